"""Recipe loading and validation."""

from builder.recipe.loader import load_recipe, schema_text, validate_paths

__all__ = ["load_recipe", "schema_text", "validate_paths"]
