"""Every prompt storyc sends: the 3-image slot plan (slots), text filters (text), the bounded
Jinja sandbox with template overrides (sandbox), the prompts of one story (promptset) and the
`storyc prompts` listing (listing)."""
