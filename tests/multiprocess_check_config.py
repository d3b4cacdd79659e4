"""The config of the multi-process test runs (tests/test_multiprocess.py)."""


def multiprocess_config(config, shard_item_table: bool = False):
  """configs/tiny.py cut to 4 epochs, validated every 2, each step's loss
  logged; the item table replicated or row-sharded over the devices."""
  config.train.max_epochs = 4
  config.train.eval_every_epochs = 2
  config.train.log_step_losses = True
  config.train.shard_item_table = shard_item_table
  return config
