"""The tiny models the strategy tests build load through every class they need."""


def test_tiny_bert_loads_everywhere(tiny_bert):
    from sentence_transformers import SentenceTransformer
    from transformers import AutoModelForMaskedLM, AutoModelForSequenceClassification, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_bert)
    assert tok("crash when loading")["input_ids"][0] == tok.cls_token_id
    assert AutoModelForSequenceClassification.from_pretrained(tiny_bert, num_labels=3).config.num_labels == 3
    AutoModelForMaskedLM.from_pretrained(tiny_bert)
    emb = SentenceTransformer(str(tiny_bert), device="cpu").encode(["crash when loading", "docs"])
    assert emb.shape == (2, 32)


def test_tiny_nli_has_entailment(tiny_nli):
    from transformers import AutoConfig

    assert AutoConfig.from_pretrained(tiny_nli).label2id["entailment"] == 2
