"""Dense retrieval over a Collection."""

from .dense import dense_search, retrieve, similarity

__all__ = ["dense_search", "retrieve", "similarity"]
