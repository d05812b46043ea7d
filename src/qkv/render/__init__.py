"""Renderers: they take data (loss histories, attention traces), never a model, and write pictures or text."""
