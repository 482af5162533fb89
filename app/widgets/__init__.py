"""Reusable plot widgets shared by the labs."""
