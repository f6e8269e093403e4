"""A Flask application with parameterised routes for the WSGI tests (``tests.integrations.wsgi_flask:app``)."""

from __future__ import annotations

import time

from flask import Flask, Response, stream_with_context

app = Flask(__name__)


@app.get("/items/<int:item_id>")
def item(item_id):
    return {"item": item_id}


@app.route("/users/<name>/orders", methods=["GET", "POST"])
def orders(name):
    return {"user": name, "orders": []}


@app.get("/boom")
def boom():
    raise ZeroDivisionError("division by zero in a view")


@app.get("/stream")
def stream():
    def chunks():
        yield "first chunk\n"
        time.sleep(0.2)
        yield "last chunk\n"

    return Response(stream_with_context(chunks()), mimetype="text/plain")
