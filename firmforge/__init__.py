"""firmforge: image-on-demand firmware for OpenWrt-based distributions."""

__version__ = "0.1.0"
