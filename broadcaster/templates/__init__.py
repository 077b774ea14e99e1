"""Pre-approved bilingual templates: catalogue, gazetteer, variables, rendering, checks."""
