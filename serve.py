"""Answers recommendation requests over HTTP from a serving directory.

  python recommend.py --workdir runs/beauty --export-serving serving/beauty
  python serve.py --serving serving/beauty --port 8000
  curl -s localhost:8000/recommend -d '{"history": ["B0001", "B0002"], "k": 5}'
  # -> {"ids": [...], "scores": [...]}

Loads only the serving directory (the jax.export artifact, vocab.json,
serving.json; no checkpoint, config or model code). POST /recommend takes
{"history": [raw item ids, oldest first], "k": 10, "unknown": "error"|"skip"};
bad requests get a 4xx with {"error": "..."}. GET /health says it is up.
Prints "serve.py: ready on http://HOST:PORT" once it answers (--port 0 picks
a free port). Stops on Ctrl-C / SIGTERM.
"""

import asyncio
import signal
import sys

from absl import flags, logging

from fame_jax import cli

_SERVING = flags.DEFINE_string("serving", None, "Directory written by recommend.py --export-serving.")
_HOST = flags.DEFINE_string("host", "127.0.0.1", "Address to listen on.")
_PORT = flags.DEFINE_integer("port", 8000, "Port; 0 = a free one (printed).")
_MAX_BATCH = flags.DEFINE_integer("max-batch", 64, "Most queued requests answered by one call.")
flags.mark_flag_as_required("serving")


async def _serve(model, host: str, port: int, max_batch: int) -> None:
  from aiohttp import web

  from fame_jax import serving
  runner = web.AppRunner(serving.make_app(model, max_batch), access_log=None)
  await runner.setup()
  site = web.TCPSite(runner, host, port)
  await site.start()
  bound = site._server.sockets[0].getsockname()[1]  # The real port when --port 0.
  print(f"serve.py: ready on http://{host}:{bound}", flush=True)
  stop = asyncio.Event()
  loop = asyncio.get_running_loop()
  for sig in (signal.SIGINT, signal.SIGTERM):
    loop.add_signal_handler(sig, stop.set)
  await stop.wait()
  await runner.cleanup()


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)
  from fame_jax import serving  # JAX loads only now.
  model = serving.ServingModel(_SERVING.value)
  model.top_k([model.indices([model.item_ids[1]])[0]])  # Compile the one-request shape first.
  print(f"serve.py: {_SERVING.value}: top {model.max_k} of {model.info['num_items']} items, "
        f"histories up to {model.max_history} items", file=sys.stderr, flush=True)
  asyncio.run(_serve(model, _HOST.value, _PORT.value, _MAX_BATCH.value))


if __name__ == "__main__":
  cli.run(main)
