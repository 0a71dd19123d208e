"""Aloware API adapters: the ring-group roster."""
