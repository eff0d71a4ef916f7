"""transformers configuration classes as data, and config.json files written the way save_pretrained writes them.

Each CLASSES entry is the keyword defaults of one transformers configuration class __init__ (transformers
4.5x, the versions most Hub checkpoints were saved with), transcribed from
src/transformers/models/<family>/configuration_<family>.py. DERIVED adds the attributes __init__ computes
(DeepseekV3Config writes head_dim = qk_rope_head_dim and qk_head_dim, Qwen3 writes layer_types, ...).

saved_config() reproduces PretrainedConfig.to_diff_dict(): every key of the class is written (null for
None), and a key of the PretrainedConfig base class is left out when it equals both the base default and
the class default (so tie_word_embeddings is absent exactly when it is true in a class whose default is
true). Keys the class does not know are never written: a DeepseekV3Config has no topk_method, no
scoring_func, no moe_layer_freq and no num_nextn_predict_layers.

value(cfg, key) is what the modeling code sees: the config's value, or the class default when absent.
"""
import copy

TRANSFORMERS_VERSION = "4.56.0"

# PretrainedConfig's own defaults for the keys the family classes pass to super().__init__().
BASE_DEFAULTS = {"tie_word_embeddings": True, "pad_token_id": None, "bos_token_id": None, "eos_token_id": None}

_LLAMA_ROPE = {"rope_theta": 10000.0, "rope_scaling": None}

CLASSES = {
    "llama": dict(vocab_size=32000, hidden_size=4096, intermediate_size=11008, num_hidden_layers=32,
                  num_attention_heads=32, num_key_value_heads=None, hidden_act="silu", max_position_embeddings=2048,
                  initializer_range=0.02, rms_norm_eps=1e-6, use_cache=True, pad_token_id=None, bos_token_id=1,
                  eos_token_id=2, pretraining_tp=1, tie_word_embeddings=False, attention_bias=False,
                  attention_dropout=0.0, mlp_bias=False, head_dim=None, **_LLAMA_ROPE),
    "qwen3": dict(vocab_size=151936, hidden_size=4096, intermediate_size=22016, num_hidden_layers=32,
                  num_attention_heads=32, num_key_value_heads=32, head_dim=128, hidden_act="silu",
                  max_position_embeddings=32768, initializer_range=0.02, rms_norm_eps=1e-6, use_cache=True,
                  tie_word_embeddings=False, attention_bias=False, use_sliding_window=False, sliding_window=4096,
                  max_window_layers=28, layer_types=None, attention_dropout=0.0, **_LLAMA_ROPE),
    "mixtral": dict(vocab_size=32000, hidden_size=4096, intermediate_size=14336, num_hidden_layers=32,
                    num_attention_heads=32, num_key_value_heads=8, head_dim=None, hidden_act="silu",
                    max_position_embeddings=4096 * 32, initializer_range=0.02, rms_norm_eps=1e-5, use_cache=True,
                    pad_token_id=None, bos_token_id=1, eos_token_id=2, tie_word_embeddings=False,
                    rope_theta=1e6, sliding_window=None, attention_dropout=0.0, num_experts_per_tok=2,
                    num_local_experts=8, output_router_logits=False, router_aux_loss_coef=0.001,
                    router_jitter_noise=0.0),
    "qwen2_moe": dict(vocab_size=151936, hidden_size=2048, intermediate_size=5632, num_hidden_layers=24,
                      num_attention_heads=16, num_key_value_heads=16, hidden_act="silu",
                      max_position_embeddings=32768, initializer_range=0.02, rms_norm_eps=1e-6, use_cache=True,
                      tie_word_embeddings=False, rope_theta=10000.0, rope_scaling=None, use_sliding_window=False,
                      sliding_window=4096, max_window_layers=28, attention_dropout=0.0, decoder_sparse_step=1,
                      moe_intermediate_size=1408, shared_expert_intermediate_size=5632, num_experts_per_tok=4,
                      num_experts=60, norm_topk_prob=False, output_router_logits=False,
                      router_aux_loss_coef=0.001, mlp_only_layers=None),
    "qwen3_moe": dict(vocab_size=151936, hidden_size=2048, intermediate_size=6144, num_hidden_layers=24,
                      num_attention_heads=32, num_key_value_heads=4, hidden_act="silu",
                      max_position_embeddings=32768, initializer_range=0.02, rms_norm_eps=1e-6, use_cache=True,
                      tie_word_embeddings=False, rope_theta=10000.0, rope_scaling=None, attention_bias=False,
                      use_sliding_window=False, sliding_window=4096, max_window_layers=28, attention_dropout=0.0,
                      decoder_sparse_step=1, moe_intermediate_size=768, num_experts_per_tok=8, num_experts=128,
                      norm_topk_prob=False, output_router_logits=False, router_aux_loss_coef=0.001,
                      mlp_only_layers=None),
    "olmoe": dict(vocab_size=50304, hidden_size=2048, intermediate_size=2048, num_hidden_layers=16,
                  num_attention_heads=16, num_key_value_heads=None, hidden_act="silu", max_position_embeddings=4096,
                  initializer_range=0.02, rms_norm_eps=1e-5, use_cache=True, pad_token_id=1, bos_token_id=None,
                  eos_token_id=50279, tie_word_embeddings=False, rope_theta=10000.0, rope_scaling=None,
                  attention_bias=False, attention_dropout=0.0, clip_qkv=None, num_experts_per_tok=8,
                  num_experts=64, output_router_logits=False, router_aux_loss_coef=0.01, norm_topk_prob=False),
    "deepseek_v2": dict(vocab_size=102400, hidden_size=4096, intermediate_size=11008, moe_intermediate_size=1407,
                        num_hidden_layers=30, num_attention_heads=32, num_key_value_heads=32, n_shared_experts=None,
                        n_routed_experts=None, routed_scaling_factor=1.0, kv_lora_rank=512, q_lora_rank=1536,
                        qk_rope_head_dim=64, v_head_dim=128, qk_nope_head_dim=128, topk_method="greedy",
                        n_group=None, topk_group=None, num_experts_per_tok=None, first_k_dense_replace=0,
                        norm_topk_prob=False, hidden_act="silu", max_position_embeddings=2048,
                        initializer_range=0.02, rms_norm_eps=1e-6, use_cache=True, pad_token_id=None,
                        bos_token_id=100000, eos_token_id=100001, pretraining_tp=1, tie_word_embeddings=False,
                        rope_theta=10000.0, rope_scaling=None, attention_bias=False, attention_dropout=0.0,
                        mlp_bias=False),
    "deepseek_v3": dict(vocab_size=129280, hidden_size=7168, intermediate_size=18432, moe_intermediate_size=2048,
                        num_hidden_layers=61, num_attention_heads=128, num_key_value_heads=128, n_shared_experts=1,
                        n_routed_experts=256, routed_scaling_factor=2.5, kv_lora_rank=512, q_lora_rank=1536,
                        qk_rope_head_dim=64, v_head_dim=128, qk_nope_head_dim=128, n_group=8, topk_group=4,
                        num_experts_per_tok=8, first_k_dense_replace=3, norm_topk_prob=True, hidden_act="silu",
                        max_position_embeddings=4096, initializer_range=0.02, rms_norm_eps=1e-6, use_cache=True,
                        pad_token_id=None, bos_token_id=0, eos_token_id=1, pretraining_tp=1,
                        tie_word_embeddings=False, rope_theta=10000.0, rope_scaling=None, rope_interleave=True,
                        attention_bias=False, attention_dropout=0.0),
    "glm4_moe": dict(vocab_size=151552, hidden_size=4096, intermediate_size=10944, num_hidden_layers=46,
                     num_attention_heads=96, partial_rotary_factor=0.5, num_key_value_heads=8, hidden_act="silu",
                     max_position_embeddings=131072, initializer_range=0.02, rms_norm_eps=1e-5, use_cache=True,
                     tie_word_embeddings=False, rope_theta=10000.0, rope_scaling=None, attention_bias=False,
                     attention_dropout=0.0, moe_intermediate_size=1408, num_experts_per_tok=8, n_shared_experts=1,
                     n_routed_experts=128, routed_scaling_factor=1.0, n_group=1, topk_group=1,
                     first_k_dense_replace=1, norm_topk_prob=True, use_qk_norm=False),
    "dots1": dict(vocab_size=152064, hidden_size=4608, intermediate_size=10944, moe_intermediate_size=1408,
                  num_hidden_layers=62, num_attention_heads=32, num_key_value_heads=32, n_shared_experts=None,
                  n_routed_experts=None, n_group=1, topk_group=1, num_experts_per_tok=None, first_k_dense_replace=0,
                  norm_topk_prob=False, hidden_act="silu", max_position_embeddings=2048, initializer_range=0.02,
                  rms_norm_eps=1e-6, use_cache=True, tie_word_embeddings=False, rope_theta=10000.0,
                  rope_scaling=None, attention_bias=False, attention_dropout=0.0, routed_scaling_factor=1.0,
                  sliding_window=4096, max_window_layers=62, layer_types=None),
    "ernie4_5_moe": dict(vocab_size=103424, pad_token_id=0, bos_token_id=1, eos_token_id=2, hidden_size=2560,
                         intermediate_size=12288, num_hidden_layers=28, num_attention_heads=20, num_key_value_heads=4,
                         hidden_act="silu", max_position_embeddings=131072, initializer_range=0.02, rms_norm_eps=1e-5,
                         use_cache=True, tie_word_embeddings=True, rope_theta=500000.0, rope_scaling=None,
                         use_bias=False, moe_intermediate_size=1536, moe_k=6, moe_num_experts=64,
                         moe_num_shared_experts=2, moe_layer_start_index=1, moe_layer_end_index=-1,
                         moe_layer_interval=1, moe_norm_min=1e-12, output_router_logits=False,
                         router_aux_loss_coef=0.001),
    "granitemoe": dict(vocab_size=32000, hidden_size=4096, intermediate_size=11008, num_hidden_layers=32,
                 num_attention_heads=32, num_key_value_heads=None, hidden_act="silu", max_position_embeddings=2048,
                 initializer_range=0.02, rms_norm_eps=1e-6, use_cache=True, pad_token_id=None, bos_token_id=1,
                 eos_token_id=2, tie_word_embeddings=False, rope_theta=10000.0, rope_scaling=None,
                 attention_bias=False, attention_dropout=0.0, embedding_multiplier=1.0, logits_scaling=1.0,
                 residual_multiplier=1.0, attention_multiplier=1.0, num_local_experts=8, num_experts_per_tok=2,
                 output_router_logits=False, router_aux_loss_coef=0.001),
    "granitemoeshared": dict(dict(vocab_size=32000, hidden_size=4096, intermediate_size=11008, num_hidden_layers=32,
                 num_attention_heads=32, num_key_value_heads=None, hidden_act="silu", max_position_embeddings=2048,
                 initializer_range=0.02, rms_norm_eps=1e-6, use_cache=True, pad_token_id=None, bos_token_id=1,
                 eos_token_id=2, tie_word_embeddings=False, rope_theta=10000.0, rope_scaling=None,
                 attention_bias=False, attention_dropout=0.0, embedding_multiplier=1.0, logits_scaling=1.0,
                 residual_multiplier=1.0, attention_multiplier=1.0, num_local_experts=8, num_experts_per_tok=2,
                 output_router_logits=False, router_aux_loss_coef=0.001), shared_intermediate_size=0),
    "phimoe": dict(vocab_size=32064, hidden_size=4096, intermediate_size=6400, num_hidden_layers=32,
                   num_attention_heads=32, num_key_value_heads=8, hidden_act="silu",
                   max_position_embeddings=4096 * 32, initializer_range=0.02, rms_norm_eps=1e-5, use_cache=True,
                   pad_token_id=None, bos_token_id=1, eos_token_id=2, tie_word_embeddings=False, rope_theta=1e6,
                   rope_scaling=None, sliding_window=None, attention_dropout=0.0, num_experts_per_tok=2,
                   num_local_experts=16, output_router_logits=False, router_aux_loss_coef=0.001,
                   router_jitter_noise=0.01, input_jitter_noise=0.0, attention_bias=False, lm_head_bias=False),
    "dbrx": dict(d_model=2048, n_heads=16, n_layers=24, max_seq_len=2048, vocab_size=32000, resid_pdrop=0.0,
                 emb_pdrop=0.0, attn_config=None, ffn_config=None, use_cache=True, initializer_range=0.02,
                 output_router_logits=False, tie_word_embeddings=False),
    "llama4_text": dict(vocab_size=202048, hidden_size=5120, intermediate_size=8192, intermediate_size_mlp=16384,
                        num_hidden_layers=48, num_attention_heads=40, num_key_value_heads=8, head_dim=128,
                        hidden_act="silu", max_position_embeddings=4096 * 32, initializer_range=0.02,
                        rms_norm_eps=1e-5, use_cache=True, pad_token_id=None, bos_token_id=1, eos_token_id=2,
                        tie_word_embeddings=False, rope_theta=500000.0, attention_dropout=0.0,
                        num_experts_per_tok=1, num_local_experts=16, moe_layers=None, interleave_moe_layer_step=1,
                        use_qk_norm=True, output_router_logits=False, router_aux_loss_coef=0.001,
                        router_jitter_noise=0.0, rope_scaling=None, no_rope_layers=None, no_rope_layer_interval=4,
                        attention_chunk_size=8192, layer_types=None, attn_temperature_tuning=True,
                        floor_scale=8192, attn_scale=0.1, attention_bias=False),
    "jetmoe": dict(vocab_size=32000, hidden_size=2048, num_hidden_layers=12, num_key_value_heads=16, kv_channels=128,
                   intermediate_size=5632, max_position_embeddings=4096, activation_function="silu",
                   num_local_experts=8, num_experts_per_tok=2, output_router_logits=False, aux_loss_coef=0.01,
                   use_cache=True, bos_token_id=1, eos_token_id=2, tie_word_embeddings=True, rope_theta=10000.0,
                   rms_norm_eps=1e-6, initializer_range=0.01, attention_dropout=0.0),
    "gpt_oss": dict(num_hidden_layers=36, num_local_experts=128, vocab_size=201088, hidden_size=2880,
                    intermediate_size=2880, head_dim=64, num_attention_heads=64, num_key_value_heads=8,
                    sliding_window=128, rope_theta=150000.0, tie_word_embeddings=False, hidden_act="silu",
                    initializer_range=0.02, max_position_embeddings=131072, rms_norm_eps=1e-5,
                    rope_scaling={"rope_type": "yarn", "factor": 32.0, "beta_fast": 32.0, "beta_slow": 1.0,
                                  "truncate": False, "original_max_position_embeddings": 4096},
                    attention_dropout=0.0, num_experts_per_tok=4, router_aux_loss_coef=0.9,
                    output_router_logits=False, use_cache=True, layer_types=None, swiglu_limit=7.0,
                    attention_bias=True),
}


# MiniMaxConfig (4.5x) is a MixtralConfig with the layer pattern, the lightning block size and six residual factors.
CLASSES["minimax"] = dict(CLASSES["mixtral"], layer_types=None, block_size=256, full_attn_alpha_factor=1,
                          full_attn_beta_factor=1, linear_attn_alpha_factor=1, linear_attn_beta_factor=1,
                          mlp_alpha_factor=1, mlp_beta_factor=1)


# DbrxConfig's nested classes; save_pretrained writes each nested config as its difference from these
# (plus its model_type), so an absent nested key means the default below.
DBRX_ATTN = dict(attn_pdrop=0.0, clip_qkv=None, kv_n_heads=1, rope_theta=10000.0)
DBRX_FFN = dict(ffn_act_fn={"name": "silu"}, ffn_hidden_size=3584, moe_num_experts=4, moe_top_k=1,
                moe_jitter_eps=None, moe_loss_weight=0.01, moe_normalize_expert_weights=1.0)


def _nested_diff(value, defaults):
    out = {k: v for k, v in (value or {}).items() if k not in defaults or defaults[k] != v}
    out["model_type"] = ""
    return dict(sorted(out.items()))


def _layer_types_qwen(c):
    window = c["sliding_window"] if c.get("use_sliding_window") else None
    return ["sliding_attention" if window is not None and i >= c["max_window_layers"] else "full_attention"
            for i in range(c["num_hidden_layers"])]


def _derive(mt, c):
    """The attributes a class's __init__ sets beyond its arguments (all written by save_pretrained)."""
    if c.get("num_key_value_heads", 0) is None:
        c["num_key_value_heads"] = c["num_attention_heads"]
    if mt == "llama" and c["head_dim"] is None:
        c["head_dim"] = c["hidden_size"] // c["num_attention_heads"]
    if mt in ("deepseek_v2", "deepseek_v3"):
        c["head_dim"] = c["qk_rope_head_dim"]
    if mt == "deepseek_v3":
        c["qk_head_dim"] = c["qk_nope_head_dim"] + c["qk_rope_head_dim"]
    if mt == "deepseek_v2":
        c.pop("pretraining_tp")  # the class deletes it
    if mt == "dots1" and c["layer_types"] is None:
        c["layer_types"] = ["sliding_attention" if c["sliding_window"] is not None and i >= c["max_window_layers"]
                            else "full_attention" for i in range(c["num_hidden_layers"])]
    if mt == "ernie4_5_moe" and c["moe_layer_end_index"] == -1:
        c["moe_layer_end_index"] = c["num_hidden_layers"] - 1
    if mt == "phimoe" and isinstance(c["rope_scaling"], dict) and "original_max_position_embeddings" in c["rope_scaling"]:
        c["original_max_position_embeddings"] = c["rope_scaling"]["original_max_position_embeddings"]
    if mt == "dbrx":
        c["attn_config"] = _nested_diff(c["attn_config"], DBRX_ATTN)
        c["ffn_config"] = _nested_diff(c["ffn_config"], DBRX_FFN)
    if mt == "llama4_text":
        L = c["num_hidden_layers"]
        if not c["no_rope_layers"]:
            c["no_rope_layers"] = [int((i + 1) % c["no_rope_layer_interval"] != 0) for i in range(L)]
        if c["moe_layers"] is None:
            step = c["interleave_moe_layer_step"]
            c["moe_layers"] = list(range(step - 1, L, step))
        if c["layer_types"] is None:
            c["layer_types"] = ["chunked_attention" if r else "full_attention" for r in c["no_rope_layers"]]
    if mt == "minimax" and c["layer_types"] is None:
        c["layer_types"] = ["full_attention" if (i + 1) % 2 else "linear_attention"
                            for i in range(c["num_hidden_layers"])]
    if mt == "jetmoe":
        c["num_attention_heads"] = c["num_key_value_heads"] * c["num_experts_per_tok"]
    if mt.startswith("granitemoe"):
        c["position_embedding_type"] = "rope"  # hard-coded by the class, written all the same
    if mt == "qwen3":
        c["sliding_window"] = c["sliding_window"] if c["use_sliding_window"] else None
        if c["layer_types"] is None:
            c["layer_types"] = _layer_types_qwen(c)
    if mt in ("qwen2_moe", "qwen3_moe"):
        c["mlp_only_layers"] = [] if c["mlp_only_layers"] is None else c["mlp_only_layers"]
    if mt == "gpt_oss" and c["layer_types"] is None:
        c["layer_types"] = ["sliding_attention" if (i + 1) % 2 else "full_attention"
                            for i in range(c["num_hidden_layers"])]
    rs = c.get("rope_scaling")
    if isinstance(rs, dict) and "type" in rs and "rope_type" not in rs:
        rs["rope_type"] = rs["type"]  # rope_config_validation's backward-compatibility copy


def saved_config(model_type, architecture, torch_dtype="float32", extra=None, **overrides):
    """The config.json transformers writes for CLASSES[model_type](**overrides, **extra).save_pretrained().
    overrides: arguments of the class (or of PretrainedConfig: token ids, tie_word_embeddings); extra:
    keys the class does not declare, which PretrainedConfig stores and writes back as they are (Qwen3-MoE's
    head_dim, vendor keys)."""
    cls = CLASSES[model_type]
    unknown = set(overrides) - set(cls) - set(BASE_DEFAULTS)
    assert not unknown, "%s has no %s (pass vendor keys as extra=)" % (model_type, sorted(unknown))
    c = copy.deepcopy(cls)
    c.update(copy.deepcopy(overrides))
    c.update(copy.deepcopy(extra or {}))
    _derive(model_type, c)
    out = {}
    for k, v in c.items():
        if k in BASE_DEFAULTS and v == BASE_DEFAULTS[k] and v == cls.get(k, BASE_DEFAULTS[k]):
            continue
        out[k] = v
    out.update(architectures=[architecture], model_type=model_type, torch_dtype=torch_dtype,
               transformers_version=TRANSFORMERS_VERSION)
    return dict(sorted(out.items()))


def value(cfg, key):
    """The value the modeling code reads: the config's, else the class default (None when neither)."""
    if key in cfg:
        return cfg[key]
    return CLASSES.get(cfg["model_type"], {}).get(key)


def dbrx_value(cfg, section, key):
    """A DBRX attn_config / ffn_config value: the saved difference, else the nested class default."""
    defaults = DBRX_ATTN if section == "attn_config" else DBRX_FFN
    return (cfg.get(section) or {}).get(key, defaults[key])
