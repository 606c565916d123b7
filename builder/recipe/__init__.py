"""Recipes: the model (model.py, the frozen dataclasses every later stage
gets), the loader that reads and validates a recipe file (loader.py, with
yamlpos.py, schema.py, rules.py and convert.py) and build options
(options.py). Import from the module you need: this package's own
namespace stays empty, so that the model can be imported without the
loader and the registries it needs."""
