"""`egrpo serve-search --index DIR`: serve an index folder of any kind (bm25 / dense / hybrid) over
HTTP with the Search-R1 API (+ /visit)."""

from __future__ import annotations

import argparse
import sys


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("--index", required=True,
                   help="index folder built by `egrpo index` (any --kind), or a corpus .jsonl (BM25 on the spot)")
    p.add_argument("--encoder", default=None,
                   help="dense / hybrid: the encoder folder, when not where meta.json says it was at build time")
    p.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1: local only)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000; 0 picks a free one)")
    p.add_argument("--max-topk", type=int, default=100, help="largest topk a request may ask for")
    p.add_argument("--max-queries", type=int, default=512, help="most queries in one /retrieve request")


def run(args: argparse.Namespace) -> int:
    from egrpo_jax.tools.registry import open_backend
    from egrpo_jax.tools.server import ServerLimits, make_server

    try:
        if args.index.startswith(("http://", "https://")):
            raise ValueError("--index must be an index folder or a corpus .jsonl, not a url")
        limits = ServerLimits(max_topk=args.max_topk, max_queries=args.max_queries,
                              default_topk=min(10, args.max_topk))
        backend = open_backend(args.index, encoder=args.encoder)
        server = make_server(backend, args.host, args.port, limits)
    except (OSError, ValueError, ImportError) as e:  # bad folder / encoder / limits / port in use: one line
        print(f"egrpo serve-search: {e}", file=sys.stderr)
        return 2
    host, port = server.server_address[:2]
    print(f"serving {len(backend)} documents on http://{host}:{port} (POST /retrieve, POST /visit, GET /health)",
          flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0
