"""Validation comparison of --start-epoch 1 vs 2 for DP + suppressed (same split as supjax_app.dp.select)."""
import json, sys, threading
from concurrent.futures import ThreadPoolExecutor
from supjax_app.dp.app import train_models
from supjax_app.dp.config import DPConfig
from supjax_app.dp.select import validation_split
from supjax_app.train.app import load_data
from supjax_app.train.config import TrainConfig
ds = load_data(TrainConfig(data="fashion-mnist", seed=0))
x_fit, y_fit, x_val, y_val = validation_split(ds.x_train, ds.y_train, 5000, 0)
x_fit, y_fit = x_fit[:20000], y_fit[:20000]
rows, lock = [], threading.Lock()
def cand(start):
    cfg = DPConfig(data="fashion-mnist", epochs=3, batch_size=1024, lr=4.0, clip=0.1, epsilon=3.0, start_epoch=start)
    r = train_models(cfg, x_fit, y_fit, x_val, y_val, ds.num_classes, models=("dp_suppressed",),
                     log=lambda m: print(f"start {start}: {m}", flush=True))
    m = r["models"]["dp_suppressed"]
    with lock:
        rows.append({"start_epoch": start, "validation_accuracy": m["test_accuracy"], "zeros": m["zeros"],
                     "schedule": r["schedule"], "noise_multiplier": r["privacy"]["noise_multiplier"]})
        json.dump({"fit_examples": 20000, "validation_examples": 5000, "model": "dp_suppressed",
                   "fixed": {"epochs": 3, "batch_size": 1024, "lr": 4.0, "clip": 0.1, "epsilon": 3.0},
                   "candidates": rows}, open(sys.argv[1], "w"), indent=2)
with ThreadPoolExecutor(2) as pool:
    for f in [pool.submit(cand, s) for s in (1, 2)]:
        f.result()
