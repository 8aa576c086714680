# Sphinx configuration: the API reference from the docstrings (autodoc + napoleon, the
# docstrings are numpy style), the guides in Markdown (MyST). `make docs` builds it with
# warnings as errors; tests/unit/test_docs.py runs that build.
import dpdkvirtio

project = "dpdkvirtio"
release = dpdkvirtio.__version__
version = release
extensions = ["sphinx.ext.autodoc", "sphinx.ext.napoleon", "myst_parser"]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build"]
napoleon_google_docstring = False
napoleon_numpy_docstring = True
napoleon_use_rtype = False
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_default_options = {"members": True, "undoc-members": False}
myst_heading_anchors = 3
html_theme = "alabaster"
html_title = f"dpdkvirtio {release}"
