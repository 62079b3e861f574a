"""Presentation: one emitter of titled tables (emit.py) and one module per view. Imports analysis,
the engine and the spec layer; nothing below imports it."""
