"""Where DP + suppressed's kept weights end, on the validation split of supjax_app.dp.select (no test data).

``python docs/dp-fashion-mnist/weights_at_bound.py UPPER_BOUND OUT.json`` trains candidate A's settings
(10 epochs, batch 1024, lr 4, clip 0.1, ε = 3, δ = 1e-5) with every layer's upper bound at UPPER_BOUND
on the 50000 fit images, scores the 10000 held out, and counts per layer the kept weights and those at
or above the bound. Run with 1.2 (A itself) it found fc3's kept weights pinned at the bound; that is
what candidates G-I of the select grid test.
"""
import json
import sys

import numpy as np

from supjax_app.dp.app import _apply, privacy
from supjax_app.dp.config import DPConfig
from supjax_app.dp.select import validation_split
from supjax_app.dp.train import dp_optimizer, train_dp
from supjax_app.models import init_params, lenet5_for, lenet5_rules
from supjax_app.train.app import load_data
from supjax_app.train.config import TrainConfig
from supjax_app.train.loop import make_predict

bound, out_path = float(sys.argv[1]), sys.argv[2]
cfg = DPConfig(data="fashion-mnist", epochs=10, batch_size=1024, lr=4.0, clip=0.1, end_epoch=10, epsilon=3,
               delta=1e-5, upper_bound=bound)
ds = load_data(TrainConfig(data="fashion-mnist", seed=0))
x_fit, y_fit, x_val, y_val = validation_split(ds.x_train, ds.y_train, 10000, 0)
priv = privacy(cfg, len(x_fit))
model = lenet5_for(x_fit.shape[1:], ds.num_classes, activation=cfg.activation)
apply = _apply(model)
rules = lenet5_rules(upper_bound=bound)
tx = dp_optimizer(cfg.lr, cfg.momentum, cfg.clip, priv["noise_multiplier"], cfg.batch_size, cfg.seed,
                  rules=rules, schedule=cfg.schedule(len(x_fit) // cfg.batch_size))
params, _, _ = train_dp(apply, init_params(model, x_fit.shape[1:], cfg.seed), tx, x_fit, y_fit,
                        epochs=cfg.epochs, batch_size=cfg.batch_size, seed=cfg.seed, log=print)
predict = make_predict(lambda p, x, rng: apply(p, x))
report = {"upper_bound": bound, "validation_accuracy": float(np.mean(np.argmax(predict(params, x_val), -1) == y_val)),
          "layers": {}}
for name in ("conv1", "conv2", "fc1", "fc2", "fc3"):
    a = np.abs(np.asarray(params[name]["kernel"])).ravel()
    report["layers"][name] = {"weights": int(a.size), "kept": int(np.sum(a > 0)), "max_abs": float(a.max()),
                              "at_or_above_bound": int(np.sum(a >= bound - 1e-4)),
                              "median_abs_kept": float(np.median(a[a > 0]))}
print(json.dumps(report, indent=1))
with open(out_path, "w") as f:
    json.dump(report, f, indent=1)
