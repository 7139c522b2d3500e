"""dgl: dual-gradient learning under label noise."""

from dgl.config import register_schema as _register_schema
from dgl.resolvers import register as _register_resolvers

__version__ = "0.1.0"
_register_resolvers()
_register_schema()
