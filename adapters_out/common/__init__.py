"""Pieces several outbound technologies share (no technology package imports another)."""
