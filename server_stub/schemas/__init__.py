"""Pydantic request/response models, one module per entity family.
Requests forbid unknown fields (StrictModel)."""
