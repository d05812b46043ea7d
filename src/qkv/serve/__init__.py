"""``qkv serve``: a local web page to build attention step by step, inspect any model and watch it generate.

    from qkv.serve.app import create_app
    from qkv.serve.config import ServeConfig
    app = create_app(ServeConfig(runs=Path("runs")))      # a Starlette (ASGI) application

The package is the server side: a small JSON API (``openapi.json``) and the page's files (``static/``).
Starlette and uvicorn come with the ``serve`` extra (``python -m pip install '.[serve]'`` in a clone). Making
the app loads no model and imports no PyTorch; models load on the first request that needs them. See
docs/explorer.md.
"""
