"""Invented articles for benchmarks: deterministic, ~600 words, on-topic or off-topic."""

from __future__ import annotations

import random

CHIP_SENTENCES = [
    "{company} said its {product} accelerators would be available to cloud customers in {month}.",
    "Analysts expect demand for {product} chips to outstrip supply through the end of the year.",
    "The {product} delivers roughly {n} times the training throughput of the previous generation, the company said.",
    "Customers such as {buyer} plan to rent clusters of {product} instances for large language model training.",
    "Supply of high-bandwidth memory and TSMC's CoWoS packaging remains the main constraint on shipments.",
    "{company} is spending heavily on custom silicon to reduce its reliance on Nvidia GPUs.",
    "A spokesperson for {company} declined to share pricing but said the chips cut inference costs by {n}0 percent.",
    "The data center racks use liquid cooling and draw more than {n}0 kilowatts each.",
    "Engineers at {company} taped out the design on a 3nm process earlier this year.",
    "{buyer} signed a multi-year agreement to use {product} capacity in three regions.",
]
OFF_SENTENCES = [
    "{company} said the update would reach all users over the next few weeks.",
    "Shoppers can find discounts on headphones, kitchen gadgets and smart speakers during the sale.",
    "The new version of the app adds a dark mode and faster search across shared folders.",
    "Critics praised the game's open world but said the story dragged in the middle chapters.",
    "The company's shares rose {n} percent in early trading after the announcement.",
    "Customers reported that the service was slow to load on older phones.",
    "{company} also announced changes to its subscription plans starting next month.",
    "The court will hear arguments in the case later this year, lawyers for both sides said.",
    "Reviewers noted that battery life improved by about {n} hours compared with last year's model.",
    "The streaming service will add {n} new shows to its catalogue in the spring.",
]
COMPANIES = ["Amazon", "Google", "Microsoft", "Nvidia", "AMD", "Intel", "Meta"]
PRODUCTS = ["Trainium2", "Inferentia2", "TPU v5p", "Trillium", "Maia 100", "H100", "H200", "B200",
            "MI300X", "Gaudi 3", "GB200", "Graviton4"]
BUYERS = ["Anthropic", "OpenAI", "Databricks", "a large bank", "several startups"]
MONTHS = ["January", "March", "June", "September", "December"]


def article(rng: random.Random, on_topic: bool, words: int = 600) -> str:
    pool = CHIP_SENTENCES if on_topic else OFF_SENTENCES
    title = (f"{rng.choice(COMPANIES)} bets on {rng.choice(PRODUCTS)} for AI training" if on_topic
             else f"{rng.choice(COMPANIES)} rolls out a new app update")
    body, count = [], 0
    while count < words:
        sentence = rng.choice(pool).format(company=rng.choice(COMPANIES), product=rng.choice(PRODUCTS),
                                           buyer=rng.choice(BUYERS), month=rng.choice(MONTHS),
                                           n=rng.randint(2, 9))
        body.append(sentence)
        count += len(sentence.split())
    return f"{title}\n\n" + " ".join(body)


def corpus(n: int = 2000, on_topic_share: float = 0.2, seed: int = 7) -> list[tuple[str, bool]]:
    rng = random.Random(seed)
    on = int(n * on_topic_share)
    items = [(article(rng, i < on), i < on) for i in range(n)]
    rng.shuffle(items)
    return items
