"""Reference timing for the interop benchmark: transformers-style KGW detection (lefthash) in PyTorch.

Reproduces the per-token work of transformers' WatermarkDetector._score_ngrams_in_passage, which calls
WatermarkLogitsProcessor._get_greenlist_ids for every scored n-gram (its lru_cache is keyed by tensors,
which hash by identity, so it never hits): manual_seed(hash_key * prev_token % (2^64 - 1)),
randperm(V, generator=g)[:int(V * gamma)], then `target in greenlist_ids`.

Usage: hf_kgw_detect.py STREAM_JSON, where the file holds {"vocabSize", "hashingKey", "greenlistRatio",
"contextWidth", "ids"}. Prints one JSON line: seconds (perf_counter around the scoring, after imports and
setup), tokens scored, green count, torch version and thread count.
"""

import json
import sys
import time

import torch

# One intra-op thread, as the Node side runs on one thread (randperm on CPU is sequential in any case).
torch.set_num_threads(1)


class GreenListProcessor:
    """The lefthash parts of transformers' WatermarkLogitsProcessor that detection uses."""

    def __init__(self, vocab_size, greenlist_ratio, hashing_key, context_width):
        self.vocab_size = vocab_size
        self.greenlist_ratio = greenlist_ratio
        self.hash_key = hashing_key
        self.context_width = context_width
        self.rng = torch.Generator(device="cpu")
        self.max_seed = 2**64 - 1

    def set_seed(self, input_seq):
        input_seq = input_seq[-self.context_width :]
        seed = self.hash_key * input_seq[-1]
        self.rng.manual_seed(seed.item() % self.max_seed)

    def _get_greenlist_ids(self, input_seq):
        self.set_seed(input_seq)
        vocab_permutation = torch.randperm(self.vocab_size, device=input_seq.device, generator=self.rng)
        return vocab_permutation[: int(self.vocab_size * self.greenlist_ratio)]


def score_ngrams(processor, input_ids):
    """WatermarkDetector._score_ngrams_in_passage for one sequence (lefthash: n = context_width + 1)."""
    n = processor.context_width + 1
    seq_length = input_ids.shape[0]
    indices = torch.arange(n).unsqueeze(0) + torch.arange(seq_length - n + 1).unsqueeze(1)
    ngrams = input_ids[indices]
    scored = 0
    green = 0
    for ngram in ngrams:
        prefix = ngram[:-1]
        target = ngram[-1]
        greenlist_ids = processor._get_greenlist_ids(prefix)
        green += int(target in greenlist_ids)
        scored += 1
    return scored, green


def main():
    with open(sys.argv[1], encoding="utf-8") as handle:
        job = json.load(handle)
    processor = GreenListProcessor(
        job["vocabSize"], job["greenlistRatio"], job["hashingKey"], job["contextWidth"]
    )
    input_ids = torch.tensor(job["ids"], dtype=torch.long)
    start = time.perf_counter()
    scored, green = score_ngrams(processor, input_ids)
    seconds = time.perf_counter() - start
    print(
        json.dumps(
            {
                "seconds": seconds,
                "tokens": scored,
                "green": green,
                "torch": torch.__version__,
                "threads": torch.get_num_threads(),
            }
        )
    )


if __name__ == "__main__":
    main()
