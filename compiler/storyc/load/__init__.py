"""Reading a story file: safe YAML composition (yaml_tree), editor positions (positions),
positioned validation errors (validation), the loader's codes (codes) and the entry points
load_story / load_story_text (loader)."""
