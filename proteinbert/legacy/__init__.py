"""The 2021 ``protein-bert`` API (``load_pretrained_model``, ``FinetuningModelGenerator``,
``finetune``, ``evaluate_by_len`` ...), written over the modern one.

Its modules are importable under their 2021 paths too (``proteinbert.finetuning``,
``proteinbert.model_generation``, ``proteinbert.existing_model_loading``,
``proteinbert.conv_and_global_attention_model``), so 2021 code runs unchanged. New code should use
:mod:`proteinbert.model`, :mod:`proteinbert.weights` and :mod:`proteinbert.training`.
"""
