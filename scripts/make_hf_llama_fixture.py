"""A tiny Hugging Face LLaMA directory and the references Rankwise's tokenizer.json and safetensors loaders must match.

  python scripts/make_hf_llama_fixture.py SmolLM2-135M-Instruct.Q4_1.gguf   (the peer env: scripts/peer-env.sh)

Writes Tests/Fixtures/hf-llama/:
- model/: what `save_pretrained` writes for a random LlamaForCausalLM (2 blocks, 4 query heads over 2 key/value
  heads, untied output) with a byte-level BPE tokenizer trained here the way SmolLM2's is built (Digits with
  individual digits, then ByteLevel; ChatML special tokens; the chat template of the GGUF file): config.json,
  model.safetensors, tokenizer.json, tokenizer_config.json.
- llama3-tokenizer.json: a second trained tokenizer in the LLaMA-3 style (NFC normalizer, a Split regex
  pre-tokenizer, ByteLevel without regex, BPE with ignore_merges, a TemplateProcessing post-processor adding BOS).
- reference.json: for each tokenizer the golden texts' ids (with and without special tokens) and decodings; the
  chat template rendered for two conversations; greedy continuations of the model.
- reference.safetensors: the model's float32 logits for the reference prompts, and with each adapter below.
- train.* and grad.* in reference.safetensors: one training step's loss (labels only on the continuation, as
  response-only loss) and every LoRA gradient of the lora/ adapter, from PEFT in train mode.
- lora/, dora/: PEFT adapters (CAUSAL_LM, every block linear, r 4, alpha 8, random non-zero A and B) on the model,
  as `rankwise generate --adapter` loads them.
"""
import json
import os
import sys

import torch
from gguf import GGUFReader
from safetensors.torch import save_file
from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "Tests", "Fixtures", "hf-llama")
MODEL_DIR = os.path.join(OUT, "model")
os.makedirs(MODEL_DIR, exist_ok=True)

reader = GGUFReader(sys.argv[1])
field = reader.fields["tokenizer.chat_template"]
chat_template = bytes(field.parts[field.data[0]]).decode("utf-8")

corpus = [
    "The quick brown fox jumps over the lazy dog. The dog sleeps; the fox runs on.",
    "Fine-tuning adapters on a CPU: rank 8, alpha 16, learning rate 2e-4, 1,000 steps in 12.5 minutes.",
    "def add(a, b):\n    return a + b  # sum\n\nprint(add(2, 40))",
    "Ünïcödé àccents: café, naïve, façade, Ångström. Ελληνικά, русский текст, 日本語のテキスト.",
    "emoji 😀👍 and numbers 12345, 3.14159, 2026-12-07; e-mail@example.com https://example.org/a?b=c",
    "She said: 'we're here', 'they've gone', 'I'll see', 'you'd think', 'it's fine'.",
] * 20
specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]


def train(tokenizer, vocab_size, special_tokens):
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=special_tokens, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False)
    tokenizer.train_from_iterator(corpus, trainer)
    return tokenizer


smollm = Tokenizer(models.BPE())
smollm.pre_tokenizer = pre_tokenizers.Sequence([
    pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)])
smollm.decoder = decoders.ByteLevel()
smollm.post_processor = processors.ByteLevel(trim_offsets=False)
train(smollm, 420, specials)

llama3_pattern = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                  r"|\s*[\r\n]+|\s+(?!\S)|\s+")
llama3 = Tokenizer(models.BPE(ignore_merges=True))
llama3.normalizer = normalizers.NFC()
llama3.pre_tokenizer = pre_tokenizers.Sequence([
    pre_tokenizers.Split(Regex(llama3_pattern), behavior="isolated", invert=False),
    pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
llama3.decoder = decoders.ByteLevel()
train(llama3, 400, ["<|begin_of_text|>", "<|end_of_text|>"])
bos = llama3.token_to_id("<|begin_of_text|>")
llama3.post_processor = processors.Sequence([
    processors.ByteLevel(trim_offsets=False),
    processors.TemplateProcessing(
        single="<|begin_of_text|> $A", pair="<|begin_of_text|> $A <|begin_of_text|> $B:1",
        special_tokens=[("<|begin_of_text|>", bos)])])
llama3.save(os.path.join(OUT, "llama3-tokenizer.json"))

fast = PreTrainedTokenizerFast(
    tokenizer_object=smollm, bos_token="<|im_start|>", eos_token="<|im_end|>", pad_token="<|im_end|>",
    unk_token="<|endoftext|>", chat_template=chat_template)
fast.save_pretrained(MODEL_DIR)

torch.manual_seed(7)
config = LlamaConfig(
    vocab_size=smollm.get_vocab_size(), hidden_size=32, intermediate_size=48, num_hidden_layers=2,
    num_attention_heads=4, num_key_value_heads=2, rope_theta=10_000.0, rms_norm_eps=1e-5,
    max_position_embeddings=128, tie_word_embeddings=False, bos_token_id=fast.bos_token_id,
    eos_token_id=fast.eos_token_id, initializer_range=0.2)
model = LlamaForCausalLM(config).eval()
with torch.no_grad():
    for name, parameter in model.named_parameters():
        if "norm" in name:
            parameter.copy_(1 + 0.1 * torch.randn_like(parameter))
model.save_pretrained(MODEL_DIR, safe_serialization=True)

texts = [
    "", "Hello world", "The quick brown fox, 12345 and 3.14!", "def add(a, b):\n    return a + b\n\n\n",
    "café naïve Ångström 日本語 русский", "emoji 😀👍🏽 ½ ² Ⅻ", "  runs   of\tspaces\t\tand\r\nbreaks  ",
    "'s 'S 't 're 've 'm 'll 'd's", "text<|im_end|>more<|im_start|>user", "e\u0301 composed vs é precomposed",
]
reference = {"texts": texts, "smollm": [], "llama3": [], "chats": [], "generations": []}
llama3_fast = PreTrainedTokenizerFast(tokenizer_object=llama3, bos_token="<|begin_of_text|>",
                                      eos_token="<|end_of_text|>")
for key, tokenizer in [("smollm", fast), ("llama3", llama3_fast)]:
    for text in texts:
        ids = tokenizer.encode(text, add_special_tokens=False)
        reference[key].append({
            "ids": ids, "ids_with_special": tokenizer.encode(text, add_special_tokens=True),
            "decoded": tokenizer.decode(ids, skip_special_tokens=False),
            "decoded_skip_special": tokenizer.decode(ids, skip_special_tokens=True)})
for messages in [[{"role": "user", "content": "Hi"}],
                 [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "A colour?"},
                  {"role": "assistant", "content": "Blue."}, {"role": "user", "content": "Another?"}]]:
    text = fast.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    reference["chats"].append({"messages": messages, "text": text, "ids": fast.encode(text, add_special_tokens=False)})

logits = {}
prompts = ["The quick brown fox", "def add(a, b):\n    return a + b", "café 12345"]
with torch.no_grad():
    for index, prompt in enumerate(prompts):
        ids = fast.encode(prompt, add_special_tokens=False)
        logits[f"prompt{index}"] = model(torch.tensor([ids])).logits[0].float().contiguous()
        generated = model.generate(torch.tensor([ids]), max_new_tokens=8, do_sample=False, eos_token_id=None,
                                   pad_token_id=fast.pad_token_id)
        reference["generations"].append({"prompt": prompt, "ids": ids, "continuation": generated[0, len(ids):].tolist()})

from peft import LoraConfig, get_peft_model  # noqa: E402

for name, dora in [("lora", False), ("dora", True)]:
    torch.manual_seed(11)
    base = LlamaForCausalLM.from_pretrained(MODEL_DIR).eval()
    adapted = get_peft_model(base, LoraConfig(
        task_type="CAUSAL_LM", r=4, lora_alpha=8, lora_dropout=0.0, use_dora=dora, init_lora_weights=False,
        target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"])).eval()
    adapted.save_pretrained(os.path.join(OUT, name))
    os.remove(os.path.join(OUT, name, "README.md"))  # PEFT's model card template
    with torch.no_grad():
        for index, prompt in enumerate(prompts):
            ids = fast.encode(prompt, add_special_tokens=False)
            logits[f"{name}.prompt{index}"] = adapted(torch.tensor([ids])).logits[0].float().contiguous()
            generated = adapted.generate(input_ids=torch.tensor([ids]), max_new_tokens=8, do_sample=False,
                                         eos_token_id=None, pad_token_id=fast.pad_token_id)
            reference["generations"].append(
                {"prompt": prompt, "adapter": name, "ids": ids, "continuation": generated[0, len(ids):].tolist()})
    with open(os.path.join(OUT, name, "adapter_config.json")) as f:
        adapter_config = json.load(f)
    adapter_config["base_model_name_or_path"] = "model"  # relative to the fixture, not this machine's path
    with open(os.path.join(OUT, name, "adapter_config.json"), "w") as f:
        json.dump(adapter_config, f, indent=2)

# One training step of the LoRA adapter: loss on the continuation only (the prompt's labels -100), gradients.
torch.manual_seed(11)
from peft import PeftModel  # noqa: E402

trained = PeftModel.from_pretrained(LlamaForCausalLM.from_pretrained(MODEL_DIR), os.path.join(OUT, "lora"),
                                    is_trainable=True)
trained.train()
prompt_ids = fast.encode("The quick brown fox", add_special_tokens=False)
answer_ids = fast.encode(" jumps over the lazy dog, 12345 times.", add_special_tokens=False)
ids = torch.tensor([prompt_ids + answer_ids])
labels = torch.tensor([[-100] * len(prompt_ids) + answer_ids])
loss = trained(input_ids=ids, labels=labels).loss
loss.backward()
logits["train.ids"] = ids[0].contiguous()
logits["train.labels"] = labels[0].contiguous()
logits["train.loss"] = loss.detach().reshape(1)
for name, parameter in trained.named_parameters():
    if parameter.requires_grad:
        logits["grad." + name] = parameter.grad.detach().contiguous()
save_file(logits, os.path.join(OUT, "reference.safetensors"))
with open(os.path.join(OUT, "reference.json"), "w") as f:
    json.dump(reference, f, ensure_ascii=False, indent=1)
print("wrote", MODEL_DIR, "vocabulary", config.vocab_size, "and references for", len(texts), "texts")
