"""FPGA boards: platforms, board tops (UART bridge, LEDs, PLL), synthesis with the
YoWASP tools, report parsing and programming."""
