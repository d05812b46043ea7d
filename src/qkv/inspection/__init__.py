"""Inspection sits beside the model: capture who attends to whom without changing what the model computes."""

from qkv.inspection.capture import capture_attention

__all__ = ["capture_attention"]
