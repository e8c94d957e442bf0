"""task-history's MCP server: the tools (tools.py) over a `store.Store`, served by uvicorn over streamable
HTTP (http.py) or over stdio, plus a terminal CLI (cli.py). Imports point inward: this package uses
`store/` and `config/`, never the other way round."""
