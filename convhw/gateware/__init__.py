"""The engine's gateware: Amaranth components built from an ``EngineConfig``."""
