"""Three-tier omnisearch ranking: the backend-neutral query value and its translators.

Arrives with the search issue; the package exists so the layout is stable.
"""
