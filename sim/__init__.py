"""Everything that runs the RTL: the contraction harness over several backends
(Amaranth's simulator, a compiled model, a board over UART), waveforms, the `fetta` CLI."""


def __getattr__(name):
    # Lazy: `import sim` stays cheap; the harness pulls in Amaranth only when used.
    if name in ("run_contraction", "ContractionResult"):
        from . import harness
        return getattr(harness, name)
    raise AttributeError(name)
