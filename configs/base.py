"""The neutral base config: the docs/protocol.md §4 defaults on the synthetic facet world.

  python train.py --config configs/base.py --workdir runs/base

One exception to the protocol defaults: W_f^h starts as the chunk selector
(facet_proj_init="selector", docs/findings.md#selector-init). Dataset configs
call :func:`get_base_config` and override what differs; `python train.py
--config configs/<name>.py --print_config` lists those differences.
"""

import ml_collections


def get_base_config() -> ml_collections.ConfigDict:
  """Returns the base config (unlocked; callers lock it)."""
  c = ml_collections.ConfigDict()

  # ---------------------------------------------------------------- data
  c.data = ml_collections.ConfigDict()
  # Reader: "synthetic", "s3rec" (user item item ... lines), "movielens"
  # (ratings.dat/.csv + movies.dat/.csv), "amazon" (review JSON lines +
  # metadata JSON), "recbole" (.inter/.item), "csv"/"tsv"/"parquet" (any
  # interaction log with a header, see data.columns), or "tfds" (a built
  # tensorflow-datasets dataset, see data.tfds_name).
  c.data.format = "synthetic"
  c.data.name = "synthetic"  # Short name used in logs and results.
  c.data.path = ""  # Interactions file (or directory for recbole/movielens).
  c.data.item_text_path = ""  # Item-text JSONL (../shared/data style); "" = none.
  c.data.item_text_id_field = "item_id"  # JSONL key holding the raw item id.
  c.data.attributes_path = ""  # *_item2attributes.json; "" = none.
  c.data.attribute_names_path = ""  # *_attribute_names.tsv; "" = none.
  c.data.metadata_path = ""  # Format-specific metadata (movies.dat, Amazon meta).
  c.data.kcore = 0  # Iterative k-core on users and items; 0 = off.
  # csv/tsv/parquet: the log's column of each role; "" = the first header
  # column with a usual name (user_id, userId, reviewerID, ...).
  c.data.columns = ml_collections.ConfigDict()
  c.data.columns.user = ""  # User id column; "" = found by name.
  c.data.columns.item = ""  # Item id column; "" = found by name.
  c.data.columns.time = ""  # Time column (numbers or ISO-8601); "" = found by name.
  c.data.dedup = "keep"  # csv/tsv/parquet repeated rows: "keep", "exact" or "user_item".
  c.data.time_format = "auto"  # csv/tsv/parquet times: "auto", "numeric" or "iso8601".
  c.data.tfds_name = ""  # With format="tfds": builder name, e.g. "fame_beauty".
  c.data.tfds_data_dir = ""  # With format="tfds": tfds data_dir.
  c.data.max_len = 50  # Model window: the last max_len items of a sequence.
  # Synthetic facet world (format="synthetic").
  c.data.synthetic = ml_collections.ConfigDict()
  c.data.synthetic.seed = 0  # Generator seed: same seed, same dataset.
  c.data.synthetic.num_users = 3000  # Users.
  c.data.synthetic.num_items = 1000  # Items.
  c.data.synthetic.num_facets = 3  # Categorical facets per item.
  c.data.synthetic.values_per_facet = 8  # Distinct values per facet.
  c.data.synthetic.min_length = 8  # Shortest user sequence.
  c.data.synthetic.max_length = 40  # Longest user sequence.
  c.data.synthetic.noise = 0.1  # Probability a step ignores the user's taste.
  c.data.synthetic.popularity_alpha = 1.0  # Zipf exponent of item popularity.

  # ---------------------------------------------------------------- model
  c.model = ml_collections.ConfigDict()
  c.model.hidden_size = 64  # d.
  c.model.num_layers = 2  # Blocks; the last is the FAME block.
  c.model.num_heads = 2  # H; d' = d / H.
  c.model.num_experts = 4  # E query experts per head (1 = no MoE).
  c.model.ffn_inner = 256  # Inner width of the trunk FFN (d -> inner -> d).
  c.model.dropout = 0.5  # One rate for embedding, hidden and attention.
  c.model.facet_heads = True  # False = concat heads + W_O (SASRec last layer).
  c.model.facet_item_proj = "linear"  # "linear" (W_f^h) or "slice".
  # W_f^h init: "selector" (starts picking chunk h of the item embedding; learns
  # faster, docs/findings.md#selector-init) or "normal" N(0, 0.02) (the protocol default).
  c.model.facet_proj_init = "selector"
  # Initial scale of the LayerNorm that ends the last block (SASRec: ffn_norm;
  # FAME: head_ffn_norm, the F^h); u and the initial scores scale with it.
  c.model.output_norm_scale = 1.0
  c.model.gate = "learned"  # "learned" softmax gate or "uniform" mean.
  c.model.moe_all_layers = False  # True = MoE attention in every layer.
  c.model.layer_norm_eps = 1e-12  # LayerNorm epsilon (RecBole SASRec).
  c.model.init_std = 0.02  # N(0, std) for weights and embeddings.
  c.model.max_len = 50  # Rows of the position table; must be >= data.max_len.

  # ---------------------------------------------------------------- training
  c.train = ml_collections.ConfigDict()
  c.train.seed = 0  # Init, dropout and data-order seed.
  c.train.batch_size = 256  # Global batch in sequences (rows when unpacked).
  c.train.learning_rate = 1e-3  # Adam peak learning rate.
  c.train.warmup_steps = 0  # Linear warm-up steps; 0 = none.
  c.train.grad_clip_norm = 0.0  # Global-norm clipping; 0 = off.
  c.train.weight_decay = 0.0  # Decoupled weight decay (AdamW); 0 = Adam.
  c.train.max_epochs = 300  # Upper bound on epochs.
  c.train.patience_evals = 10  # Early stopping: evaluations without a new best.
  c.train.eval_every_epochs = 1  # Validation period.
  c.train.examples = "all_positions"  # "all_positions" or "prefix_last".
  c.train.packing = True  # Pack short sequences several to a row.
  c.train.loss_impl = "dense"  # "dense" or "chunked" (tiles over items).
  c.train.loss_chunk_items = 8192  # Item tile for loss_impl="chunked".
  c.train.shard_item_table = False  # Split the item table's rows over the devices (huge catalogs; fame_jax/sharded_table.py).
  c.train.log_every_steps = 50  # Progress-bar refresh.
  c.train.log_step_losses = False  # Also write each step's loss in metrics.jsonl (step_losses).
  c.train.keep_checkpoints = 2  # Latest checkpoints kept (2: a damaged newest falls back); best kept apart.
  c.train.progress = True  # tqdm progress bars for epochs and steps.
  # Stop, resumable, after this epoch (split a long run into parts; the same
  # command then resumes it); 0 = run to the end.
  c.train.stop_after_epoch = 0

  # ---------------------------------------------------------------- eval
  c.eval = ml_collections.ConfigDict()
  c.eval.mask_history = True  # Exclude the user's history items (-inf).
  c.eval.batch_size = 512  # Users per scoring chunk (memory bound; 512 fastest on CPU).
  c.eval.ks = (5, 10, 20)  # Cut-offs for HR@K and NDCG@K.

  # ---------------------------------------------------------------- init
  c.init = ml_collections.ConfigDict()
  c.init.item_embeddings_from = ""  # Pre-training workdir to initialise from.
  c.init.freeze_item_emb = False  # Keep the item table fixed in stage 2.

  # ---------------------------------------------------------------- pretrain
  c.pretrain = ml_collections.ConfigDict()
  c.pretrain.enabled = False  # Run stage 1 before training (train.py).
  c.pretrain.text_template = ""  # Item text template over item_meta; "" = dataset default (item_text.DATASET_DEFAULTS).
  c.pretrain.facets = ()  # item_meta fields, one per head; "" = unlabelled.
  c.pretrain.temperature = 0.1  # SupCon temperature tau.
  c.pretrain.schedule = "alternate"  # "alternate" or "sum".
  c.pretrain.batch_size = 512  # Items per contrastive batch.
  c.pretrain.steps = 2000  # Optimisation steps.
  c.pretrain.learning_rate = 1e-3  # Adam learning rate.
  c.pretrain.hidden_size = 256  # Hidden width of the 2-layer P_h MLP.
  c.pretrain.view_dropout = 0.1  # Dropout views for unlabelled heads.
  c.pretrain.encode_batch_size = 128  # Texts per encoder batch.
  c.pretrain.max_tokens = 256  # Tokenizer truncation.
  c.pretrain.seed = 0  # Head init, batch sampling and dropout-view seed.
  c.pretrain.pair_sampling = True  # Half a batch = same-label partners of the other half.
  c.pretrain.max_label_fraction = 0.9  # Facet values on more of the labelled items are dropped.
  c.pretrain.checkpoint_every_steps = 500  # Orbax checkpoint period (and at the last step).
  c.pretrain.text_cache_dir = ""  # Text-embedding cache directory; "" = <workdir>/pretrain.
  c.pretrain.agreement_k = 10  # Neighbours per query in the facet-neighbour agreement.
  c.pretrain.agreement_queries = 2000  # Query items sampled for that metric.
  return c


def get_config() -> ml_collections.ConfigDict:
  """The base config as a runnable config file (train.py locks it)."""
  return get_base_config()
