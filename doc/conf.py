"""Sphinx configuration for skbilevel.

Build with ``make doc`` (``python -m sphinx -W --keep-going -b html doc doc/_build/html``):
warnings are errors. No extension here needs the network (no intersphinx).
"""

import os
import sys
from datetime import date

import matplotlib

matplotlib.use("Agg")

# The package is installed in editable mode by ``make venv``; this makes a plain checkout work
# too.
sys.path.insert(0, os.path.abspath(".."))

import skbilevel  # noqa: E402

# -- Project -------------------------------------------------------------------------------
project = "skbilevel"
author = "The skbilevel developers"
copyright = f"{date.today().year}, {author}"
release = skbilevel.__version__
version = release

# -- General -------------------------------------------------------------------------------
extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
]

templates_path = ["_templates"]
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store", "auto_examples/*.ipynb",
                    "auto_examples/*.py", "auto_examples/*.zip"]
default_role = "literal"
root_doc = "index"

# -- autodoc / autosummary -----------------------------------------------------------------
autosummary_generate = True
autosummary_imported_members = False
autodoc_typehints = "none"  # the numpydoc sections already give the types
autoclass_content = "class"

# -- numpydoc ------------------------------------------------------------------------------
numpydoc_show_class_members = False
numpydoc_show_inherited_class_members = False
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False
numpydoc_validation_checks = set()
numpydoc_attributes_as_param_list = True

# -- sphinx-gallery ------------------------------------------------------------------------
sphinx_gallery_conf = {
    "examples_dirs": "../examples",
    "gallery_dirs": "auto_examples",
    "filename_pattern": "/plot_",
    "matplotlib_animations": False,
    "abort_on_example_error": True,
    "download_all_examples": False,
    "image_scrapers": ("matplotlib",),
    "remove_config_comments": True,
}

# -- No network: no intersphinx ------------------------------------------------------------
intersphinx_mapping = {}

# -- HTML ----------------------------------------------------------------------------------
html_theme = "pydata_sphinx_theme"
html_title = f"skbilevel {release}"
html_static_path = []
html_theme_options = {
    "navigation_with_keys": False,
    "show_toc_level": 2,
    "header_links_before_dropdown": 5,
}
html_show_sourcelink = False
