"""The framed protocol in pure Python: CRC, encoding, incremental decoding."""

import pytest

from fetta.boards import protocol as P


def test_crc16_ccitt_false_check_value():
    assert P.crc16(b"123456789") == 0x29B1


def test_crc_residue_of_a_whole_frame_is_zero():
    frame = P.encode_request(P.Cmd.WRITE, 9, 0x10_0002, [1, 0xFFFFFFFF])
    assert P.crc16(frame[1:]) == 0


def test_request_layout():
    frame = P.encode_request(P.Cmd.WRITE, 3, 0x123456, [0xDEADBEEF])
    assert frame[:7] == bytes([P.SOF_REQ, P.Cmd.WRITE, 3, 0, 0x56, 0x34, 0x12])
    assert frame[7:11] == bytes([0xEF, 0xBE, 0xAD, 0xDE])
    assert len(frame) == 13
    req = P.decode_request(frame)
    assert (req.cmd, req.seq, req.count, req.addr, req.words) == \
        (P.Cmd.WRITE, 3, 1, 0x123456, [0xDEADBEEF])


def test_read_request_has_no_payload():
    frame = P.encode_request(P.Cmd.READ, 1, 0x20, count=256)
    assert len(frame) == P.REQ_HEADER_BYTES + 2 and frame[3] == 255


@pytest.mark.parametrize("count", [0, 257])
def test_burst_length_is_checked(count):
    with pytest.raises(ValueError, match="burst length"):
        P.encode_request(P.Cmd.READ, 1, 0, count=count)


def test_parser_skips_noise_and_bad_frames():
    good = P.encode_response(P.Rsp.DATA, 7, 1, [5, 6])
    bad = bytearray(P.encode_response(P.Rsp.ACK, 6))
    bad[-1] ^= 1
    p = P.ResponseParser()
    p.feed(b"\x00\xff" + bytes(bad) + good[:5])
    assert p.pop() is None
    p.feed(good[5:] + P.encode_response(P.Rsp.NAK, 8, P.Nak.CRC))
    r = p.pop()
    assert (r.kind, r.seq, r.words) == (P.Rsp.DATA, 7, [5, 6])
    r = p.pop()
    assert (r.kind, r.arg) == (P.Rsp.NAK, P.Nak.CRC)
    assert p.pop() is None and p.bad_frames == 1


def test_info_word_roundtrip():
    assert P.parse_info(P.info_word(64)) == {"version": P.PROTOCOL_VERSION, "max_burst": 64}
    with pytest.raises(ValueError, match="magic"):
        P.parse_info(0x12345678)
