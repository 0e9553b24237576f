import pytest

from ar3po_jax.tasks import warmstart
from ar3po_jax.tasks.arithmetic import ArithmeticTask
from ar3po_jax.tokenizers.spm import train_sentencepiece
from tests.helpers import tiny_model


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
  task = ArithmeticTask.generate(seed=3, num_train=300, num_eval=20, level_weights=(1, 0, 0, 0, 0))
  tok = train_sentencepiece(task.corpus(), 64, str(tmp_path_factory.mktemp("tok") / "sp.model"))
  return task, tok


def test_pack_examples_layout_and_too_long_error(setup):
  task, tok = setup
  tokens, mask, tp = warmstart.pack_examples(
      [p.question for p in task.train], [p.solution for p in task.train], tok, 40
  )
  assert tp % 8 == 0 and tokens.shape[1] - tp <= 40 and (tokens.shape[1] - tp) % 8 == 0
  first = task.train[0]
  ids = tokens[0][mask[0]].tolist()
  assert ids == [tok.bos_id] + tok.encode(first.question) + tok.encode(first.solution) + [tok.eos_id]
  with pytest.raises(ValueError, match="exceed rollout.max_new_tokens=4"):
    warmstart.pack_examples([first.question], [first.solution], tok, 4)


def test_supervised_steps_lower_the_loss(setup):
  task, tok = setup
  model, params = tiny_model(vocab_size=tok.vocab_size)
  tokens, mask, tp = warmstart.pack_examples(
      [p.question for p in task.train], [p.solution for p in task.train], tok, 40
  )
  losses = []
  warmstart.warm_start(model, params, tokens, mask, tp, steps=41, batch_size=16, lr=3e-3, warmup_steps=5, seed=0,
                       on_step=lambda i, loss: losses.append(loss))
  assert len(losses) == 3 and losses[-1] < 0.8 * losses[0], losses


def test_the_cache_key_ignores_how_a_run_executes_and_not_what_it_trains():
  from ar3po_jax.tasks import embedded
  from configs import tiny

  c = tiny.get_config("grpo")
  key = embedded.warmstart_key(c, {"seed": 1}, "tok.model")
  for field, value in (("scan_layers", True), ("export_every", 7)):
    c.model[field] = value
    assert embedded.warmstart_key(c, {"seed": 1}, "tok.model") == key
  # A key made before those fields existed is the same key: old caches stay valid.
  del c.model["scan_layers"], c.model["remat"]
  assert embedded.warmstart_key(c, {"seed": 1}, "tok.model") == key
  c.model.d_model = 64  # what the warm start trains does change it
  assert embedded.warmstart_key(c, {"seed": 1}, "tok.model") != key
  c = tiny.get_config("grpo")
  c.seed = 5
  assert embedded.warmstart_key(c, {"seed": 1}, "tok.model") != key
