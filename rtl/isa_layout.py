"""``amaranth.lib.data`` layouts of the CONTRACT payload words, generated from the ISA's
one field table (``sw_model.accel.isa.CONTRACT_FIELDS``).

``word_layout(word)`` is the ``StructLayout`` of payload word ``word``: one member per
field of that word (``unsigned``/``signed`` of the field's width; modular fields are
unsigned), named as in the table with ``levelI.`` dropped, gaps as ``_gapN`` padding,
as wide as the word's highest used bit. The controller views program-memory data
through these layouts (``word_view(word, data)``), so a field moved in the table moves
in the decoder too.
"""

from amaranth import unsigned, signed
from amaranth.lib import data

from fetta.sw_model.accel.isa import CONTRACT_FIELDS

__all__ = ["word_layout", "word_view"]


def word_layout(word: int) -> data.StructLayout:
    """The layout of CONTRACT payload word ``word``."""
    members, at = {}, 0
    for f in sorted((f for f in CONTRACT_FIELDS if f.word == word), key=lambda f: f.lsb):
        if f.lsb > at:
            members[f"_gap{at}"] = unsigned(f.lsb - at)
        members[f.name.rpartition(".")[2]] = (signed if f.signed else unsigned)(f.width)
        at = f.lsb + f.width
    if not members:
        raise ValueError(f"payload word {word} has no CONTRACT field")
    return data.StructLayout(members)


def word_view(word: int, value) -> data.View:
    """``value`` (a 32-bit word or a register of the layout's width) viewed as payload
    word ``word``."""
    layout = word_layout(word)
    return data.View(layout, value[:layout.size])
