"""ROUGE-1/2/L of the `rouge-score` package on a golden set, with and without its Porter stemmer.

  python scripts/make_rouge_reference.py      (the peer env: scripts/peer-env.sh installs rouge-score and nltk)

Writes Tests/Fixtures/rouge/golden.json: for every (target, prediction) pair the tokens rouge-score compares and the
precision, recall and F-measure of rouge1, rouge2 and rougeL, each with use_stemmer false and true.
"""
import json
import os

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
