"""Inference: the adapter to sbi and torch (the only place torch is imported)."""
