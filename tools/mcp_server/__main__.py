"""`python -m tools.mcp_server --transport stdio --advertiser adv_0001 [--store PATH]` (same flags as
`adguide tools serve`)."""

from tools.mcp_server.cli import serve

if __name__ == "__main__":
    import typer

    typer.run(serve)
