"""fetta-hdl gateware (Amaranth 0.5): MACs, output stage, contraction engines, CE array,
butterfly distribution/reduction networks, buffers, address generators, controller,
host bus and the accelerator top."""
