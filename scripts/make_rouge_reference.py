"""ROUGE-1/2/L of the `rouge-score` package on a golden set, with and without its Porter stemmer.

  python scripts/make_rouge_reference.py SmolLM2-135M-Instruct.Q4_1.gguf   (the peer env: scripts/peer-env.sh)

Writes Tests/Fixtures/rouge/golden.json: for every (target, prediction) pair the tokens rouge-score compares and the
precision, recall and F-measure of rouge1, rouge2 and rougeL, each with use_stemmer false and true; and
Tests/Fixtures/rouge/stems.json: 6,000 English words (the lowercase whole-word tokens of the GGUF file's vocabulary,
sampled with seed 0) with the stems of NLTK's PorterStemmer as rouge-score builds it.
"""
import json
import os
import random
import re
import sys

from gguf import GGUFReader
from nltk.stem import porter

from rouge_score import rouge_scorer, tokenizers

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "Tests", "Fixtures", "rouge")
os.makedirs(OUT, exist_ok=True)

pairs = [
    ("The cat sat on the mat.", "The cat is sitting on the mat."),
    ("We propose a new method for parameter-efficient fine-tuning of large language models.",
     "A novel approach to efficiently fine-tune large models with few parameters is proposed."),
    ("Adaptive ranks allocate the budget where it matters; fixed ranks do not.",
     "Fixed ranks do not allocate the budget where it matters, adaptive ranks do."),
    ("", "Nothing to compare against."),
    ("Something here.", ""),
    ("!!! ???", "..."),
    ("Running runners ran quickly; generalization generalizes generally.",
     "The runner runs quick, generalizing general generalizations."),
    ("Café naïve résumé — ÉCOLE 2024 n°5", "cafe naive resume ecole 2024 no 5"),
    ("the the the the", "the the"),
    ("a b c d e f g", "g f e d c b a"),
    ("Summaries of ACL papers: tasks, methods, outcomes and datasets were annotated by experts in 2023.",
     "Experts annotated tasks, methods and outcomes of ACL papers in 2023, giving summaries."),
    ("happiness hopping agreed conditional relational digitizer sensibility rationalization feudalism",
     "happy hop agree condition relate digit sensible rational feud"),
    ("generously ponies caresses cats probate controllable triplicate formative electrical hopeful goodness",
     "generous pony caress cat probe control triplic form electric hope good"),
    ("dying lying tying sky news innings outing canning proceed exceed succeed dies",
     "die lie tie skies new inning out can proceeding exceeding succeeding died"),
]
golden = []
for stem in [False, True]:
    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=stem)
    tokenizer = tokenizers.DefaultTokenizer(use_stemmer=stem)
    for target, prediction in pairs:
        scores = scorer.score(target, prediction)
        golden.append({
            "target": target, "prediction": prediction, "stemmed": stem,
            "target_tokens": tokenizer.tokenize(target), "prediction_tokens": tokenizer.tokenize(prediction),
            **{name: {"precision": s.precision, "recall": s.recall, "fmeasure": s.fmeasure}
               for name, s in scores.items()}})
with open(os.path.join(OUT, "golden.json"), "w") as f:
    json.dump(golden, f, ensure_ascii=False, indent=1)
print("wrote", len(golden), "scored pairs")

reader = GGUFReader(sys.argv[1])
field = reader.fields["tokenizer.ggml.tokens"]
tokens = [bytes(field.parts[i]).decode("utf-8") for i in field.data]
words = sorted({t[1:] if t.startswith("\u0120") else t for t in tokens} - {""})
words = [w for w in words if re.fullmatch(r"[a-z]{4,}", w)]
random.Random(0).shuffle(words)
stemmer = porter.PorterStemmer()
stems = {w: stemmer.stem(w) for w in sorted(words[:6000])}
with open(os.path.join(OUT, "stems.json"), "w") as f:
    json.dump(stems, f, indent=0, sort_keys=True)
print("wrote", len(stems), "stems")
