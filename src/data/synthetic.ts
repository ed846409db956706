/**
 * Synthetic parallel corpora, deterministic given a seed: `copy` and `reverse` over pseudo-words (for unit
 * tests: learnable in seconds), and `toy-mt`, a rule-based English -> pseudo-German task for the
 * quickstart. toy-mt needs what real NMT needs but stays small: a bilingual dictionary of invented
 * German-looking words, gender/case agreement of articles and adjectives, verb-second inversion after a
 * fronted adverb, verb-final subordinate clauses, compound nouns, do-support removal and punctuation.
 */
import { DataError } from '../util/errors.js';
import { deriveSeed, Rng } from '../util/random.js';
import type { SentencePair } from './corpus.js';

export type SyntheticTask = 'copy' | 'reverse' | 'toy-mt';
export const SYNTHETIC_TASKS: readonly SyntheticTask[] = ['copy', 'reverse', 'toy-mt'];

export interface SyntheticCorpusOptions {
  seed: number;
  trainPairs: number;
  validPairs: number;
  testPairs: number;
}

export interface SyntheticCorpus {
  train: SentencePair[];
  valid: SentencePair[];
  test: SentencePair[];
}

export function isSyntheticTask(s: string): s is SyntheticTask {
  return (SYNTHETIC_TASKS as readonly string[]).includes(s);
}

// ---------------------------------------------------------------------------------------------------
// copy / reverse

const PSEUDO_WORDS = ['blick', 'dorn', 'fasel', 'gump', 'hiro', 'jank', 'kolb', 'lupe', 'mirt', 'nock', 'pras', 'quon', 'rilk', 'sapo', 'tweb', 'vusk'];

function generateSequencePair(rng: Rng, isReversed: boolean): SentencePair {
  const n = 3 + rng.int(8); // 3..10 words
  const words: string[] = [];
  for (let i = 0; i < n; i++) words.push(PSEUDO_WORDS[rng.int(PSEUDO_WORDS.length)]!);
  const src = words.join(' ');
  return { src, tgt: isReversed ? [...words].reverse().join(' ') : src };
}

// ---------------------------------------------------------------------------------------------------
// toy-mt: lexicon. German words are invented; function words (articles, dass, weil, nicht) are real.

type Gender = 'm' | 'f' | 'n';
type Case = 'nom' | 'acc' | 'dat';
/** Gender, or plural (German plural agreement ignores gender). */
type Agr = Gender | 'pl';

interface Noun {
  en: string;
  enPl: string;
  de: string;
  dePl: string;
  g: Gender;
  /** Form as the first part of a compound ("garden door" -> "Garteltorne"); absent if never used so. */
  mod?: string;
}

// prettier-ignore
const NOUNS: readonly Noun[] = [
  { en: 'dog', enPl: 'dogs', de: 'Hunzel', dePl: 'Hunzel', g: 'm' },
  { en: 'cat', enPl: 'cats', de: 'Miezke', dePl: 'Miezken', g: 'f' },
  { en: 'house', enPl: 'houses', de: 'Hauf', dePl: 'Häufer', g: 'n', mod: 'Hauf' },
  { en: 'tree', enPl: 'trees', de: 'Baumer', dePl: 'Baumer', g: 'm' },
  { en: 'garden', enPl: 'gardens', de: 'Gartel', dePl: 'Gärtel', g: 'm', mod: 'Gartel' },
  { en: 'door', enPl: 'doors', de: 'Torne', dePl: 'Tornen', g: 'f' },
  { en: 'book', enPl: 'books', de: 'Buchel', dePl: 'Buchel', g: 'n', mod: 'Buchel' },
  { en: 'teacher', enPl: 'teachers', de: 'Lehrmann', dePl: 'Lehrmänner', g: 'm' },
  { en: 'child', enPl: 'children', de: 'Kindel', dePl: 'Kindeler', g: 'n', mod: 'Kindel' },
  { en: 'woman', enPl: 'women', de: 'Frauke', dePl: 'Frauken', g: 'f' },
  { en: 'man', enPl: 'men', de: 'Mannel', dePl: 'Männel', g: 'm' },
  { en: 'bird', enPl: 'birds', de: 'Vogling', dePl: 'Voglinge', g: 'm', mod: 'Vogling' },
  { en: 'river', enPl: 'rivers', de: 'Flusk', dePl: 'Fluske', g: 'm', mod: 'Flusk' },
  { en: 'car', enPl: 'cars', de: 'Wagling', dePl: 'Waglinge', g: 'm' },
  { en: 'city', enPl: 'cities', de: 'Stadtung', dePl: 'Stadtungen', g: 'f', mod: 'Stadtungs' },
  { en: 'table', enPl: 'tables', de: 'Tischel', dePl: 'Tischel', g: 'm' },
  { en: 'window', enPl: 'windows', de: 'Fensk', dePl: 'Fenske', g: 'n' },
  { en: 'letter', enPl: 'letters', de: 'Briefel', dePl: 'Briefel', g: 'm' },
  { en: 'apple', enPl: 'apples', de: 'Apfling', dePl: 'Apflinge', g: 'm', mod: 'Apfling' },
  { en: 'bread', enPl: 'breads', de: 'Brotel', dePl: 'Brotel', g: 'n' },
  { en: 'mountain', enPl: 'mountains', de: 'Bergling', dePl: 'Berglinge', g: 'm' },
  { en: 'flower', enPl: 'flowers', de: 'Blumke', dePl: 'Blumken', g: 'f', mod: 'Blumken' },
  { en: 'song', enPl: 'songs', de: 'Liedel', dePl: 'Liedel', g: 'n' },
  { en: 'friend', enPl: 'friends', de: 'Freundel', dePl: 'Freundel', g: 'm' },
  { en: 'doctor', enPl: 'doctors', de: 'Heilerin', dePl: 'Heilerinnen', g: 'f' },
  { en: 'student', enPl: 'students', de: 'Lernerin', dePl: 'Lernerinnen', g: 'f' },
  { en: 'farmer', enPl: 'farmers', de: 'Bauling', dePl: 'Baulinge', g: 'm' },
  { en: 'horse', enPl: 'horses', de: 'Pferdel', dePl: 'Pferdel', g: 'n' },
  { en: 'boat', enPl: 'boats', de: 'Bootel', dePl: 'Bootel', g: 'n' },
  { en: 'street', enPl: 'streets', de: 'Strake', dePl: 'Straken', g: 'f' },
  { en: 'bridge', enPl: 'bridges', de: 'Brucke', dePl: 'Brucken', g: 'f' },
  { en: 'school', enPl: 'schools', de: 'Schulke', dePl: 'Schulken', g: 'f', mod: 'Schulken' },
  { en: 'key', enPl: 'keys', de: 'Schlüssling', dePl: 'Schlüsslinge', g: 'm' },
  { en: 'lamp', enPl: 'lamps', de: 'Lampke', dePl: 'Lampken', g: 'f' },
  { en: 'chair', enPl: 'chairs', de: 'Stuhling', dePl: 'Stuhlinge', g: 'm' },
  { en: 'picture', enPl: 'pictures', de: 'Bildel', dePl: 'Bildeler', g: 'n' },
  { en: 'village', enPl: 'villages', de: 'Dorfel', dePl: 'Dörfel', g: 'n', mod: 'Dorfel' },
  { en: 'forest', enPl: 'forests', de: 'Waldeck', dePl: 'Waldecke', g: 'm', mod: 'Waldeck' },
  { en: 'cake', enPl: 'cakes', de: 'Kuchling', dePl: 'Kuchlinge', g: 'm' },
  { en: 'clock', enPl: 'clocks', de: 'Uhrke', dePl: 'Uhrken', g: 'f' },
  { en: 'island', enPl: 'islands', de: 'Inselke', dePl: 'Inselken', g: 'f' },
  { en: 'king', enPl: 'kings', de: 'Königel', dePl: 'Königel', g: 'm', mod: 'Königels' },
];
// Heads that form compounds with a `mod` noun (English "N N" -> German "ModHead", gender of the head).
const COMPOUND_HEADS: readonly string[] = ['door', 'book', 'tree', 'window', 'street', 'key', 'picture', 'cake', 'lamp', 'song', 'bridge', 'clock'];

interface Verb {
  en: string;
  en3: string;
  /** German stem; 3sg adds -t (-et after d/t), plural adds -en (-n after -el/-er). */
  de: string;
}

// prettier-ignore
const TRANSITIVE: readonly Verb[] = [
  { en: 'see', en3: 'sees', de: 'spähl' }, { en: 'find', en3: 'finds', de: 'fund' },
  { en: 'like', en3: 'likes', de: 'mahl' }, { en: 'buy', en3: 'buys', de: 'kaulf' },
  { en: 'read', en3: 'reads', de: 'lesk' }, { en: 'write', en3: 'writes', de: 'schrall' },
  { en: 'carry', en3: 'carries', de: 'tralg' }, { en: 'build', en3: 'builds', de: 'baul' },
  { en: 'open', en3: 'opens', de: 'offel' }, { en: 'close', en3: 'closes', de: 'schlind' },
  { en: 'paint', en3: 'paints', de: 'malk' }, { en: 'hear', en3: 'hears', de: 'hörk' },
  { en: 'help', en3: 'helps', de: 'hilp' }, { en: 'follow', en3: 'follows', de: 'fulg' },
  { en: 'visit', en3: 'visits', de: 'besuk' }, { en: 'wash', en3: 'washes', de: 'wusch' },
  { en: 'sell', en3: 'sells', de: 'verkalf' }, { en: 'cook', en3: 'cooks', de: 'kech' },
  { en: 'bring', en3: 'brings', de: 'brang' }, { en: 'draw', en3: 'draws', de: 'zink' },
  { en: 'hold', en3: 'holds', de: 'huld' }, { en: 'love', en3: 'loves', de: 'liebel' },
  { en: 'catch', en3: 'catches', de: 'fing' }, { en: 'watch', en3: 'watches', de: 'wacht' },
];
// prettier-ignore
const INTRANSITIVE: readonly Verb[] = [
  { en: 'sleep', en3: 'sleeps', de: 'schlumm' }, { en: 'run', en3: 'runs', de: 'renk' },
  { en: 'sing', en3: 'sings', de: 'singel' }, { en: 'laugh', en3: 'laughs', de: 'lachel' },
  { en: 'wait', en3: 'waits', de: 'wart' }, { en: 'dance', en3: 'dances', de: 'tanzel' },
];
// prettier-ignore
const SAY_VERBS: readonly Verb[] = [
  { en: 'say', en3: 'says', de: 'spruch' }, { en: 'think', en3: 'thinks', de: 'denk' },
  { en: 'know', en3: 'knows', de: 'wiss' },
];

// prettier-ignore
const ADJECTIVES: readonly (readonly [string, string])[] = [
  ['small', 'klin'], ['big', 'grom'], ['red', 'rotel'], ['blue', 'blaum'], ['old', 'alk'],
  ['new', 'neul'], ['happy', 'frohl'], ['sad', 'trüb'], ['fast', 'schnall'], ['slow', 'langsel'],
  ['green', 'grünk'], ['beautiful', 'schönk'], ['dark', 'dunk'], ['bright', 'hellig'], ['warm', 'warml'],
  ['cold', 'kalk'], ['young', 'jungel'], ['tall', 'hochel'], ['quiet', 'stillk'], ['clever', 'klugel'],
];

// English pre-verbal frequency adverbs; German puts them right after the finite verb (main clause).
// prettier-ignore
const FREQ_ADVERBS: readonly (readonly [string, string])[] = [['often', 'ofting'], ['always', 'stetz'], ['never', 'nimmel'], ['sometimes', 'manchmel']];
// Time adverbs: English puts them first or last; German fronts them with inversion, or puts them after the verb.
// prettier-ignore
const TIME_ADVERBS: readonly (readonly [string, string])[] = [['today', 'heutzel'], ['now', 'jetzel'], ['tomorrow', 'morgel'], ['again', 'wiederl']];
// Manner adverbs close the clause in both languages.
// prettier-ignore
const MANNER_ADVERBS: readonly (readonly [string, string])[] = [['quickly', 'schnellig'], ['slowly', 'langsig'], ['quietly', 'leisig'], ['happily', 'fröhlig']];

interface Preposition {
  en: string;
  de: string;
  /** Contraction with the dative masculine/neuter definite article `dem` (real German: in dem -> im). */
  withDem?: string;
}
// prettier-ignore
const PREPOSITIONS: readonly Preposition[] = [
  { en: 'in', de: 'in', withDem: 'im' }, { en: 'on', de: 'auf' }, { en: 'under', de: 'unter' },
  { en: 'behind', de: 'hinter' }, { en: 'next to', de: 'neben' }, { en: 'with', de: 'mit' },
  { en: 'near', de: 'bei', withDem: 'beim' }, { en: 'in front of', de: 'vor' },
];

// prettier-ignore
const NUMBERS: readonly (readonly [string, string])[] = [['two', 'zwel'], ['three', 'dreil'], ['four', 'vierk'], ['five', 'fünfel'], ['six', 'sechsel']];

// German determiners: [nom, acc, dat] x [m, f, n, pl]; '' where the form does not exist.
type Table = Record<Case, Record<Agr, string>>;
const row = (m: string, f: string, n: string, pl: string): Record<Agr, string> => ({ m, f, n, pl });
const DER: Table = { nom: row('der', 'die', 'das', 'die'), acc: row('den', 'die', 'das', 'die'), dat: row('dem', 'der', 'dem', 'den') };
const DIESER: Table = {
  nom: row('dieser', 'diese', 'dieses', 'diese'),
  acc: row('diesen', 'diese', 'dieses', 'diese'),
  dat: row('diesem', 'dieser', 'diesem', 'diesen'),
};
const einWord = (s: string): Table => ({
  nom: row(s, s + 'e', s, s + 'e'),
  acc: row(s + 'en', s + 'e', s, s + 'e'),
  dat: row(s + 'em', s + 'er', s + 'em', s + 'en'),
});
const EIN = einWord('ein');
const MEIN = einWord('mein');
const KEIN = einWord('kein');
// Adjective endings after der-words (weak), ein-words (mixed), and with no article (strong, plural only here).
const WEAK: Table = { nom: row('e', 'e', 'e', 'en'), acc: row('en', 'e', 'e', 'en'), dat: row('en', 'en', 'en', 'en') };
const MIXED: Table = { nom: row('er', 'e', 'es', 'en'), acc: row('en', 'e', 'es', 'en'), dat: row('en', 'en', 'en', 'en') };
const STRONG: Table = { nom: row('e', 'e', 'e', 'e'), acc: row('e', 'e', 'e', 'e'), dat: row('en', 'en', 'en', 'en') };

// ---------------------------------------------------------------------------------------------------
// toy-mt: sentence trees. A sentence is sampled once as a small tree keyed by English words, then
// realised in both languages, so the English side determines the German one. Tests build trees by hand.

export type ToyMtDeterminer = 'the' | 'a' | 'this' | 'my' | 'no' | 'two' | 'three' | 'four' | 'five' | 'six';

export interface ToyMtNounPhrase {
  /** `a` becomes `an` before a vowel; `this` becomes `these` in the plural; numbers imply the plural. */
  det: ToyMtDeterminer;
  adjectives?: string[];
  /** First noun of a compound: "garden" in "the garden door" (must have a compound form). */
  modifier?: string;
  noun: string;
  isPlural?: boolean;
}

export interface ToyMtClause {
  subject: ToyMtNounPhrase;
  /** English base form (`see`); intransitive verbs take no object. */
  verb: string;
  object?: ToyMtNounPhrase;
  /** Pre-verbal frequency adverb (`often`); not combined with negation. */
  frequency?: string;
  isNegated?: boolean;
  pp?: { prep: string; np: ToyMtNounPhrase };
  manner?: string;
  time?: string;
  /** Time adverb first (main clauses only): German then inverts verb and subject. */
  isTimeFronted?: boolean;
}

export type ToyMtSentence =
  | { kind: 'statement'; clause: ToyMtClause }
  | { kind: 'question'; clause: ToyMtClause }
  | { kind: 'report'; speaker: ToyMtNounPhrase; verb: string; clause: ToyMtClause }
  | { kind: 'because'; main: ToyMtClause; sub: ToyMtClause };

const NOUN_BY_EN = new Map(NOUNS.map((n) => [n.en, n]));
const VERB_BY_EN = new Map([...TRANSITIVE, ...INTRANSITIVE, ...SAY_VERBS].map((v) => [v.en, v]));
const TRANSITIVE_EN = new Set(TRANSITIVE.map((v) => v.en));
const INTRANSITIVE_EN = new Set(INTRANSITIVE.map((v) => v.en));
const SAY_EN = new Set(SAY_VERBS.map((v) => v.en));
const ADJ_BY_EN = new Map(ADJECTIVES);
const FREQ_BY_EN = new Map(FREQ_ADVERBS);
const TIME_BY_EN = new Map(TIME_ADVERBS);
const MANNER_BY_EN = new Map(MANNER_ADVERBS);
const PREP_BY_EN = new Map(PREPOSITIONS.map((p) => [p.en, p]));
const NUMBER_BY_EN = new Map(NUMBERS);

function lookup<T>(map: ReadonlyMap<string, T>, word: string, what: string): T {
  const v = map.get(word);
  if (v === undefined) throw new DataError(`toy-mt: unknown ${what} "${word}"`);
  return v;
}

const pick = <T>(rng: Rng, xs: readonly T[]): T => xs[rng.int(xs.length)]!;

function sampleNounPhrase(rng: Rng): ToyMtNounPhrase {
  const isPlural = rng.next() < 0.3;
  let noun: string;
  let modifier: string | undefined;
  if (rng.next() < 0.1) {
    noun = pick(rng, COMPOUND_HEADS);
    modifier = pick(
      rng,
      NOUNS.filter((n) => n.mod !== undefined && n.en !== noun),
    ).en;
  } else noun = pick(rng, NOUNS).en;
  const u = rng.next();
  let det: ToyMtDeterminer;
  if (isPlural) det = u < 0.4 ? 'the' : u < 0.5 ? 'this' : u < 0.65 ? 'my' : u < 0.7 ? 'no' : (pick(rng, NUMBERS)[0] as ToyMtDeterminer);
  else det = u < 0.45 ? 'the' : u < 0.75 ? 'a' : u < 0.85 ? 'this' : u < 0.95 ? 'my' : 'no';
  const v = rng.next();
  const numAdjs = v < 0.55 ? 0 : v < 0.9 ? 1 : 2;
  const adjectives: string[] = [];
  while (adjectives.length < numAdjs) {
    const a = pick(rng, ADJECTIVES)[0];
    if (!adjectives.includes(a)) adjectives.push(a);
  }
  return { det, adjectives, modifier, noun, isPlural };
}

function sampleClause(rng: Rng, isMain: boolean): ToyMtClause {
  const subject = sampleNounPhrase(rng);
  const isTransitive = rng.next() < 0.75;
  const verb = (isTransitive ? pick(rng, TRANSITIVE) : pick(rng, INTRANSITIVE)).en;
  const object = isTransitive ? sampleNounPhrase(rng) : undefined;
  const r = rng.next();
  const frequency = r < 0.15 ? pick(rng, FREQ_ADVERBS)[0] : undefined;
  const isNegated = r >= 0.15 && r < 0.28;
  const pp = rng.next() < (isTransitive ? 0.3 : 0.6) ? { prep: pick(rng, PREPOSITIONS).en, np: sampleNounPhrase(rng) } : undefined;
  const manner = rng.next() < 0.2 ? pick(rng, MANNER_ADVERBS)[0] : undefined;
  const t = rng.next();
  const time = t < 0.2 ? pick(rng, TIME_ADVERBS)[0] : undefined;
  return { subject, verb, object, frequency, isNegated, pp, manner, time, isTimeFronted: isMain && t < 0.1 };
}

/** A random toy-mt sentence tree (any length; `generateSyntheticCorpus` keeps 3-20 words). */
export function sampleToyMtSentence(rng: Rng): ToyMtSentence {
  const kind = rng.next();
  if (kind < 0.6) return { kind: 'statement', clause: sampleClause(rng, true) };
  if (kind < 0.72) {
    const clause = sampleClause(rng, false);
    return { kind: 'question', clause: { ...clause, time: undefined, isNegated: false, frequency: undefined } };
  }
  if (kind < 0.86) {
    const speaker = sampleNounPhrase(rng);
    const verb = pick(rng, SAY_VERBS).en;
    return { kind: 'report', speaker, verb, clause: sampleClause(rng, false) };
  }
  const main = sampleClause(rng, true);
  return { kind: 'because', main, sub: sampleClause(rng, false) };
}

const VOWELS = new Set(['a', 'e', 'i', 'o', 'u']);

function isPluralNp(np: ToyMtNounPhrase): boolean {
  return (np.isPlural ?? false) || NUMBER_BY_EN.has(np.det);
}

function englishNp(np: ToyMtNounPhrase): string[] {
  const noun = lookup(NOUN_BY_EN, np.noun, 'noun');
  const isPlural = isPluralNp(np);
  const rest = [...(np.adjectives ?? []), ...(np.modifier ? [np.modifier] : []), isPlural ? noun.enPl : noun.en];
  let det: string = np.det;
  if (np.det === 'a') {
    if (isPlural) throw new DataError('toy-mt: "a" with a plural noun');
    det = VOWELS.has(rest[0]![0]!) ? 'an' : 'a';
  } else if (np.det === 'this' && isPlural) det = 'these';
  return [det, ...rest];
}

function germanNp(np: ToyMtNounPhrase, c: Case, prep?: Preposition): string[] {
  const noun = lookup(NOUN_BY_EN, np.noun, 'noun');
  const isPlural = isPluralNp(np);
  const agr: Agr = isPlural ? 'pl' : noun.g;
  let det: string;
  let endings: Table;
  switch (np.det) {
    case 'the':
      [det, endings] = [DER[c][agr], WEAK];
      break;
    case 'this':
      [det, endings] = [DIESER[c][agr], WEAK];
      break;
    case 'a':
      [det, endings] = [EIN[c][agr], MIXED];
      break;
    case 'my':
      // plural ein-words take weak adjective endings (meine kleinen), singular ones mixed
      [det, endings] = [MEIN[c][agr], isPlural ? WEAK : MIXED];
      break;
    case 'no':
      [det, endings] = [KEIN[c][agr], isPlural ? WEAK : MIXED];
      break;
    default:
      [det, endings] = [lookup(NUMBER_BY_EN, np.det, 'determiner'), STRONG];
  }
  const adjs = (np.adjectives ?? []).map((a) => lookup(ADJ_BY_EN, a, 'adjective') + endings[c][agr]);
  let de = isPlural ? noun.dePl : noun.de;
  // dative plural takes -n unless the plural already ends in -n or -s
  if (c === 'dat' && isPlural && !/[ns]$/.test(de)) de += 'n';
  if (np.modifier) {
    const mod = lookup(NOUN_BY_EN, np.modifier, 'noun').mod;
    if (mod === undefined) throw new DataError(`toy-mt: "${np.modifier}" has no compound form`);
    de = mod + de.toLowerCase();
  }
  const head: string[] = [];
  if (prep?.withDem && det === 'dem') head.push(prep.withDem);
  else head.push(...(prep ? [prep.de] : []), det);
  return [...head, ...adjs, de];
}

function germanVerb(v: Verb, isPlural: boolean): string {
  if (isPlural) return /e[lr]$/.test(v.de) ? v.de + 'n' : v.de + 'en';
  return /[dt]$/.test(v.de) ? v.de + 'et' : v.de + 't';
}

function checkVerb(cl: ToyMtClause): Verb {
  const verb = lookup(VERB_BY_EN, cl.verb, 'verb');
  if (SAY_EN.has(cl.verb)) throw new DataError(`toy-mt: "${cl.verb}" only introduces reported speech`);
  if (cl.object && !TRANSITIVE_EN.has(cl.verb)) throw new DataError(`toy-mt: "${cl.verb}" takes no object`);
  if (!cl.object && !INTRANSITIVE_EN.has(cl.verb)) throw new DataError(`toy-mt: "${cl.verb}" needs an object`);
  return verb;
}

/** English clause: S [freq] V|do not V [O] [PP] [manner] [time], or with the time adverb first. */
function englishClause(cl: ToyMtClause): string[] {
  const verb = checkVerb(cl);
  const isPlural = isPluralNp(cl.subject);
  const out: string[] = [];
  if (cl.time && cl.isTimeFronted) out.push(cl.time);
  out.push(...englishNp(cl.subject));
  if (cl.frequency) out.push(cl.frequency);
  if (cl.isNegated) out.push(isPlural ? 'do' : 'does', 'not', verb.en);
  else out.push(isPlural ? verb.en : verb.en3);
  if (cl.object) out.push(...englishNp(cl.object));
  if (cl.pp) out.push(...lookup(PREP_BY_EN, cl.pp.prep, 'preposition').en.split(' '), ...englishNp(cl.pp.np));
  if (cl.manner) out.push(cl.manner);
  if (cl.time && !cl.isTimeFronted) out.push(cl.time);
  return out;
}

/**
 * German clause. Middle field: [time] [freq] [O] [nicht] [PP] [manner]. Main: S V middle, or after a
 * fronted adverb: Adv V S middle (verb second). Subordinate: S middle V (verb last).
 */
function germanClause(cl: ToyMtClause, isMain: boolean): string[] {
  const verb = germanVerb(checkVerb(cl), isPluralNp(cl.subject));
  const middle: string[] = [];
  const isFronted = isMain && cl.time !== undefined && (cl.isTimeFronted ?? false);
  if (cl.time && !isFronted) middle.push(lookup(TIME_BY_EN, cl.time, 'time adverb'));
  if (cl.frequency) middle.push(lookup(FREQ_BY_EN, cl.frequency, 'frequency adverb'));
  if (cl.object) middle.push(...germanNp(cl.object, 'acc'));
  if (cl.isNegated) middle.push('nicht');
  if (cl.pp) middle.push(...germanNp(cl.pp.np, 'dat', lookup(PREP_BY_EN, cl.pp.prep, 'preposition')));
  if (cl.manner) middle.push(lookup(MANNER_BY_EN, cl.manner, 'manner adverb'));
  const subj = germanNp(cl.subject, 'nom');
  if (!isMain) return [...subj, ...middle, verb];
  if (isFronted) return [lookup(TIME_BY_EN, cl.time!, 'time adverb'), verb, ...subj, ...middle];
  return [...subj, verb, ...middle];
}

function sentence(words: string[], end: string): string {
  const s = words.join(' ') + end;
  return s[0]!.toUpperCase() + s.slice(1);
}

/** Both sides of a toy-mt sentence tree. Throws DataError on a word outside the lexicon. */
export function realizeToyMt(s: ToyMtSentence): SentencePair {
  switch (s.kind) {
    case 'statement':
      return { src: sentence(englishClause(s.clause), '.'), tgt: sentence(germanClause(s.clause, true), '.') };
    case 'question': {
      // do-support in English; verb first in German (the verb-last order with the verb moved up front)
      const cl: ToyMtClause = { ...s.clause, time: undefined, frequency: undefined, isNegated: false };
      const en = englishClause({ ...cl, isNegated: true });
      en.splice(en.indexOf('not'), 1);
      const doForm = en.splice(en.indexOf(isPluralNp(cl.subject) ? 'do' : 'does'), 1);
      const de = germanClause(cl, false);
      return { src: sentence([...doForm, ...en], '?'), tgt: sentence([de.pop()!, ...de], '?') };
    }
    case 'report': {
      if (!SAY_EN.has(s.verb)) throw new DataError(`toy-mt: "${s.verb}" is not a verb of saying`);
      const say = lookup(VERB_BY_EN, s.verb, 'verb');
      const isPlural = isPluralNp(s.speaker);
      const en = [...englishNp(s.speaker), isPlural ? say.en : say.en3, 'that', ...englishClause({ ...s.clause, isTimeFronted: false })];
      const de = [...germanNp(s.speaker, 'nom'), germanVerb(say, isPlural) + ',', 'dass', ...germanClause(s.clause, false)];
      return { src: sentence(en, '.'), tgt: sentence(de, '.') };
    }
    case 'because': {
      const deMain = germanClause(s.main, true);
      deMain[deMain.length - 1] += ',';
      const sub = { ...s.sub, isTimeFronted: false };
      return {
        src: sentence([...englishClause(s.main), 'because', ...englishClause(sub)], '.'),
        tgt: sentence([...deMain, 'weil', ...germanClause(sub, false)], '.'),
      };
    }
  }
}

/** One random toy-mt pair. */
export function sampleToyMtPair(rng: Rng): SentencePair {
  return realizeToyMt(sampleToyMtSentence(rng));
}

const TOY_MT_MIN_WORDS = 3;
const TOY_MT_MAX_WORDS = 20;

function wordCount(s: string): number {
  return s.split(' ').length;
}

function samplePair(task: SyntheticTask, rng: Rng): SentencePair {
  switch (task) {
    case 'copy':
      return generateSequencePair(rng, false);
    case 'reverse':
      return generateSequencePair(rng, true);
    case 'toy-mt':
      for (;;) {
        const p = sampleToyMtPair(rng);
        const n = Math.max(wordCount(p.src), wordCount(p.tgt));
        if (n >= TOY_MT_MIN_WORDS && n <= TOY_MT_MAX_WORDS) return p;
      }
  }
}

/**
 * Train, valid and test sets, deterministic given `seed`. Each split draws from its own stream, so the
 * train set (and its first N pairs) does not depend on the other sizes. No source sentence occurs twice
 * anywhere: valid and test are disjoint from train and from each other.
 */
export function generateSyntheticCorpus(task: SyntheticTask, opts: SyntheticCorpusOptions): SyntheticCorpus {
  if (!isSyntheticTask(task)) throw new DataError(`unknown synthetic task "${String(task)}" (expected one of ${SYNTHETIC_TASKS.join(', ')})`);
  for (const k of ['trainPairs', 'validPairs', 'testPairs'] as const) {
    const v = opts[k];
    if (!Number.isInteger(v) || v < 0) throw new RangeError(`${k} must be an integer >= 0, got ${v}`);
  }
  const seen = new Set<string>();
  const draw = (split: string, n: number): SentencePair[] => {
    const rng = new Rng(deriveSeed(opts.seed, `synthetic-${task}-${split}`));
    const out: SentencePair[] = [];
    // A small task can run out of distinct sentences; fail clearly instead of looping forever.
    const maxDraws = 100 * n + 1000;
    for (let draws = 0; out.length < n; draws++) {
      if (draws >= maxDraws) {
        throw new DataError(`synthetic task ${task}: only ${out.length} distinct ${split} sentences after ${draws} draws (asked for ${n})`);
      }
      const p = samplePair(task, rng);
      if (seen.has(p.src)) continue;
      seen.add(p.src);
      out.push(p);
    }
    return out;
  };
  const train = draw('train', opts.trainPairs);
  const valid = draw('valid', opts.validPairs);
  const test = draw('test', opts.testPairs);
  return { train, valid, test };
}
