"""The Power BI harness: emulator fixtures, the sink and the daemon built on the emulator."""
