"""How much of a per-example gradient's norm lies on suppressed weights (validation split only, no test data).

``python docs/dp-fashion-mnist/masked_norm_share.py OUT.json`` trains DP + suppressed as candidate J does
(batch 512, lr 2, clip 0.1, upper bound 2.4, ε = 3 for its own run, whole-gradient clipping) but short:
3 epochs on 10000 of the fit images, suppression over epochs 1-3 to 95 % zeros. It then takes the
per-example gradients of 1000 held-out images at the final weights and reports, per example, the share of
the squared L2 norm on the suppressed coordinates: what whole-gradient clipping spends on weights whose
update suppression throws away (``--masked-clipping`` spends none there).
"""
import json
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax

import supjax
from supjax_app.dp.app import _apply, privacy
from supjax_app.dp.config import DPConfig
from supjax_app.dp.select import validation_split
from supjax_app.dp.train import dp_optimizer, train_dp
from supjax_app.models import init_params, lenet5_for, lenet5_rules
from supjax_app.train.app import load_data
from supjax_app.train.config import TrainConfig

out_path = sys.argv[1]
cfg = DPConfig(data="fashion-mnist", epochs=3, batch_size=512, lr=2.0, clip=0.1, start_epoch=1, end_epoch=3,
               epsilon=3, delta=1e-5, upper_bound=2.4)
ds = load_data(TrainConfig(data="fashion-mnist", seed=0))
x_fit, y_fit, x_val, y_val = validation_split(ds.x_train, ds.y_train, 10000, 0)
x_fit, y_fit, x_val, y_val = x_fit[:10000], y_fit[:10000], x_val[:1000], y_val[:1000]
priv = privacy(cfg, len(x_fit))
model = lenet5_for(x_fit.shape[1:], ds.num_classes, activation=cfg.activation)
apply = _apply(model)
rules = lenet5_rules(upper_bound=cfg.upper_bound)
tx = dp_optimizer(cfg.lr, cfg.momentum, cfg.clip, priv["noise_multiplier"], cfg.batch_size, cfg.seed,
                  rules=rules, schedule=cfg.schedule(len(x_fit) // cfg.batch_size))
params, opt_state, _ = train_dp(apply, init_params(model, x_fit.shape[1:], cfg.seed), tx, x_fit, y_fit,
                                epochs=cfg.epochs, batch_size=cfg.batch_size, seed=cfg.seed, log=print)
params = jax.tree_util.tree_map(jnp.asarray, params)
keep = supjax.keep_mask_tree(params, supjax.find_suppress_state(opt_state), rules)


def loss(p, x, y):
    return optax.softmax_cross_entropy_with_integer_labels(apply(p, x[None]), y[None])[0]


grads = jax.vmap(jax.grad(loss), in_axes=(None, 0, 0))(params, jnp.asarray(x_val), jnp.asarray(y_val))
total = sum(jnp.sum(g.reshape(len(x_val), -1) ** 2, axis=1) for g in jax.tree_util.tree_leaves(grads))
dropped = sum(jnp.sum(jnp.where(k, 0.0, g).reshape(len(x_val), -1) ** 2, axis=1)
              for g, k in zip(jax.tree_util.tree_leaves(grads), jax.tree_util.tree_leaves(keep)))
share = np.asarray(dropped / total)
zeros = {r.pattern: float(np.mean(~np.asarray(m))) for r, m in
         zip(rules, supjax.find_suppress_state(opt_state).keep_masks)}
report = {"settings": {"epochs": cfg.epochs, "fit_examples": len(x_fit), "examples_measured": len(x_val),
                       "batch_size": cfg.batch_size, "lr": cfg.lr, "clip": cfg.clip, "upper_bound": cfg.upper_bound},
          "mask_zeros": zeros,
          "norm_share_on_suppressed": {"mean": float(share.mean()), "median": float(np.median(share)),
                                       "p10": float(np.quantile(share, 0.1)), "p90": float(np.quantile(share, 0.9))},
          "kept_share_of_norm": {"median": float(np.median(np.sqrt(1.0 - share)))}}
print(json.dumps(report, indent=1))
with open(out_path, "w") as f:
    json.dump(report, f, indent=1)
