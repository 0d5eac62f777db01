"""lipparse-rt: real-time human parsing into the 20 LIP classes with LIP-Net."""

__version__ = "0.1.0"
