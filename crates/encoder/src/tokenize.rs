//! Tokenization exactly as sentence-transformers 6.x does it: the text goes to the model's
//! Hugging Face tokenizer as is (no stripping), with a `Lowercase` normalizer put in front of
//! the tokenizer's own when the model says `do_lower_case`; special tokens are added and the
//! ids truncated to the model's max length (longest-first, right side).
//!
//! Truncation is expected behaviour: tokens past the max length never reach the model.

use std::path::{Path, PathBuf};

use serde_json::Value;
use tokenizers::{
    decoders::wordpiece::WordPiece as WordPieceDecoder, models::wordpiece::WordPiece,
    normalizers::BertNormalizer, pre_tokenizers::bert::BertPreTokenizer,
    processors::bert::BertProcessing, Tokenizer, TruncationDirection, TruncationParams,
    TruncationStrategy,
};

use crate::error::{read_json, EncoderError, Result};

/// A tokenized text with offsets, special-token mask and token strings (see
/// [`TextTokenizer::encoding`]).
pub use tokenizers::Encoding;

/// The largest `tokenizer.json` read (real ones reach ~20 MB; the limit only stops a device
/// or a runaway file from being read forever).
pub const MAX_TOKENIZER_BYTES: u64 = 512 << 20;

/// Characters allowed per token of the max length before a text that may not be truncated
/// is refused without tokenizing it (text-embeddings-inference's limit).
pub const MAX_CHARS_PER_TOKEN: usize = 250;

/// One tokenized text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenizedText {
    /// Token ids, special tokens included.
    pub ids: Vec<u32>,
    /// Token type ids (all 0 for single texts).
    pub type_ids: Vec<u32>,
    /// How many leading tokens belong to a prepended prompt (0 without one): a CSR model's
    /// `Pooling` with `include_prompt: false` leaves them out.
    pub prompt_tokens: usize,
}

/// What happens to a text longer than the model's max length (special tokens included).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Truncation {
    /// Keep the first tokens (sentence-transformers' behaviour, the default).
    #[default]
    Right,
    /// Keep the last tokens.
    Left,
    /// Refuse the text: [`EncoderError::InputTooLong`].
    Refuse,
}

/// The tokenizer of a model plus the text preparation sentence-transformers applies first.
#[derive(Clone)]
pub struct TextTokenizer {
    inner: Tokenizer,
    /// The same tokenizer truncating on the left, made on first use.
    left: std::sync::OnceLock<Tokenizer>,
    /// The same tokenizer without truncation, made on first use.
    untruncated: std::sync::OnceLock<Tokenizer>,
    do_lower_case: bool,
    max_length: usize,
    pad_id: u32,
}

fn tokenizer_error(path: &Path, message: impl ToString) -> EncoderError {
    EncoderError::Tokenizer {
        path: path.to_path_buf(),
        message: message.to_string(),
    }
}

impl TextTokenizer {
    /// Loads `tokenizer.json` from `dir`, or builds a BERT WordPiece tokenizer from `vocab.txt`
    /// (with `tokenizer_config.json`'s `do_lower_case`, `strip_accents`,
    /// `tokenize_chinese_chars`) when there is no `tokenizer.json`.
    pub fn load(dir: &Path, max_length: usize, do_lower_case: bool) -> Result<Self> {
        let json_path = dir.join("tokenizer.json");
        let config = read_optional_json(&dir.join("tokenizer_config.json"))?;
        let has_json = json_path.exists();
        let mut inner = if has_json {
            let bytes = splade_sparse::files::read_regular_file(&json_path, MAX_TOKENIZER_BYTES)
                .map_err(|source| EncoderError::Io {
                    path: json_path.clone(),
                    source,
                })?;
            Tokenizer::from_bytes(&bytes).map_err(|e| tokenizer_error(&json_path, e))?
        } else {
            let vocab = dir.join("vocab.txt");
            if !vocab.exists() {
                return Err(EncoderError::MissingFile {
                    path: json_path,
                    hint: format!(" (nor {})", vocab.display()),
                });
            }
            // A FIFO or a device would block or never end: only a regular file is read.
            if !vocab.is_file() {
                return Err(tokenizer_error(&vocab, "not a regular file"));
            }
            wordpiece_from_vocab(&vocab, &config)?
        };
        let source = if has_json {
            json_path
        } else {
            dir.join("vocab.txt")
        };
        inner
            .with_truncation(Some(TruncationParams {
                direction: TruncationDirection::Right,
                max_length,
                strategy: TruncationStrategy::LongestFirst,
                stride: 0,
            }))
            .map_err(|e| tokenizer_error(&source, e))?;
        inner.with_padding(None);
        if do_lower_case {
            prepend_lowercase(&mut inner);
        }
        let pad_token = config
            .get("pad_token")
            .and_then(token_content)
            .unwrap_or_else(|| "[PAD]".to_string());
        let pad_id = inner.token_to_id(&pad_token).unwrap_or(0);
        Ok(Self {
            inner,
            left: std::sync::OnceLock::new(),
            untruncated: std::sync::OnceLock::new(),
            do_lower_case,
            max_length,
            pad_id,
        })
    }

    /// The max length texts are truncated to, special tokens included.
    pub fn max_length(&self) -> usize {
        self.max_length
    }

    /// The padding token id.
    pub fn pad_id(&self) -> u32 {
        self.pad_id
    }

    /// Whether texts are lower-cased (by a `Lowercase` normalizer) before tokenization.
    pub fn do_lower_case(&self) -> bool {
        self.do_lower_case
    }

    /// Tokenizes texts.
    pub fn encode(&self, texts: &[impl AsRef<str>]) -> Result<Vec<TokenizedText>> {
        self.encode_truncating(texts, Truncation::Right)
    }

    /// Tokenizes texts, truncating as `truncation` says. With [`Truncation::Refuse`] a text
    /// of more than [`Self::max_length`] tokens is an error
    /// ([`EncoderError::InputTooLong`]); it is refused before tokenization when it has more
    /// than 250 characters per allowed token (so no request can make the tokenizer work on
    /// megabytes of text only to refuse it).
    pub fn encode_truncating(
        &self,
        texts: &[impl AsRef<str>],
        truncation: Truncation,
    ) -> Result<Vec<TokenizedText>> {
        let tokenizer = self.variant(truncation)?;
        let char_limit = self.max_length.saturating_mul(MAX_CHARS_PER_TOKEN);
        texts
            .iter()
            .enumerate()
            .map(|(index, text)| {
                let text = text.as_ref();
                if truncation == Truncation::Refuse && text.len() > char_limit {
                    let chars = text.chars().count();
                    if chars > char_limit {
                        return Err(EncoderError::InputTooLong {
                            index,
                            what: "characters",
                            limit: char_limit,
                            given: chars,
                        });
                    }
                }
                let enc =
                    tokenizer
                        .encode_fast(text, true)
                        .map_err(|e| EncoderError::Tokenize {
                            index,
                            message: e.to_string(),
                        })?;
                if truncation == Truncation::Refuse && enc.len() > self.max_length {
                    return Err(EncoderError::InputTooLong {
                        index,
                        what: "tokens",
                        limit: self.max_length,
                        given: enc.len(),
                    });
                }
                Ok(TokenizedText {
                    ids: enc.get_ids().to_vec(),
                    type_ids: enc.get_type_ids().to_vec(),
                    prompt_tokens: 0,
                })
            })
            .collect()
    }

    /// The token ids of one text without special tokens, truncated to [`Self::max_length`]
    /// as `truncation` says (what sentence-transformers' `SparseStaticEmbedding` looks
    /// weights up for, with [`Truncation::Right`]); `index` is the text's position, for
    /// messages.
    pub fn encode_without_special_tokens(
        &self,
        text: &str,
        index: usize,
        truncation: Truncation,
    ) -> Result<Vec<u32>> {
        let enc = self
            .variant(truncation)?
            .encode_fast(text, false)
            .map_err(|e| EncoderError::Tokenize {
                index,
                message: e.to_string(),
            })?;
        if truncation == Truncation::Refuse && enc.len() > self.max_length {
            return Err(EncoderError::InputTooLong {
                index,
                what: "tokens",
                limit: self.max_length,
                given: enc.len(),
            });
        }
        Ok(enc.get_ids().to_vec())
    }

    /// The full encoding of one text (offsets, special-token mask, token strings), without
    /// truncation: what a `/tokenize` route shows.
    pub fn encoding(&self, text: &str, add_special_tokens: bool) -> Result<Encoding> {
        let tokenizer = self.variant(Truncation::Refuse)?;
        tokenizer
            .encode(text, add_special_tokens)
            .map_err(|e| EncoderError::Tokenize {
                index: 0,
                message: e.to_string(),
            })
    }

    /// The tokenizer that truncates as `truncation` says (none for [`Truncation::Refuse`]);
    /// the left and untruncated copies are made on first use.
    fn variant(&self, truncation: Truncation) -> Result<&Tokenizer> {
        let (cell, direction) = match truncation {
            Truncation::Right => return Ok(&self.inner),
            Truncation::Left => (&self.left, Some(TruncationDirection::Left)),
            Truncation::Refuse => (&self.untruncated, None),
        };
        match cell.get() {
            Some(tokenizer) => Ok(tokenizer),
            None => {
                let made = self.with_truncation(direction)?;
                Ok(cell.get_or_init(|| made))
            }
        }
    }

    /// A copy of the tokenizer truncating on the `direction` side, or not at all.
    fn with_truncation(&self, direction: Option<TruncationDirection>) -> Result<Tokenizer> {
        let mut tokenizer = self.inner.clone();
        let params = direction.map(|direction| TruncationParams {
            direction,
            max_length: self.max_length,
            strategy: TruncationStrategy::LongestFirst,
            stride: 0,
        });
        tokenizer
            .with_truncation(params)
            .map_err(|e| EncoderError::Tokenize {
                index: 0,
                message: format!("setting up truncation: {e}"),
            })?;
        Ok(tokenizer)
    }

    /// The vocabulary string of a token id.
    pub fn id_to_token(&self, id: u32) -> Option<String> {
        self.inner.id_to_token(id)
    }

    /// The largest token id the tokenizer can produce (its vocabulary and added tokens).
    pub fn max_token_id(&self) -> Option<u32> {
        self.inner.get_vocab(true).into_values().max()
    }

    /// The underlying Hugging Face tokenizer.
    pub fn inner(&self) -> &Tokenizer {
        &self.inner
    }
}

/// Puts a `Lowercase` normalizer in front of the tokenizer's own, as sentence-transformers
/// does for `do_lower_case` (unless one is already there).
fn prepend_lowercase(tokenizer: &mut Tokenizer) {
    use tokenizers::normalizers::{utils::Sequence, Lowercase, NormalizerWrapper};
    let current = tokenizer.get_normalizer().cloned();
    let has_lowercase = match &current {
        Some(NormalizerWrapper::Lowercase(_)) => true,
        Some(NormalizerWrapper::Sequence(seq)) => seq
            .as_ref()
            .iter()
            .any(|n| matches!(n, NormalizerWrapper::Lowercase(_))),
        _ => false,
    };
    if has_lowercase {
        return;
    }
    let mut parts = vec![NormalizerWrapper::Lowercase(Lowercase)];
    parts.extend(current);
    tokenizer.with_normalizer(Some(Sequence::new(parts)));
}

fn read_optional_json(path: &Path) -> Result<Value> {
    if path.exists() {
        read_json(path)
    } else {
        Ok(Value::Null)
    }
}

/// A special token in `tokenizer_config.json` is either a string or an `AddedToken` object.
fn token_content(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Object(o) => o.get("content").and_then(Value::as_str).map(str::to_string),
        _ => None,
    }
}

/// Builds the tokenizer Hugging Face's `BertTokenizerFast` converts a `vocab.txt` into.
fn wordpiece_from_vocab(vocab: &Path, config: &Value) -> Result<Tokenizer> {
    let special = |key: &str, default: &str| {
        config
            .get(key)
            .and_then(token_content)
            .unwrap_or_else(|| default.to_string())
    };
    let unk = special("unk_token", "[UNK]");
    let cls = special("cls_token", "[CLS]");
    let sep = special("sep_token", "[SEP]");
    let lowercase = config
        .get("do_lower_case")
        .and_then(Value::as_bool)
        .unwrap_or(true);
    let strip_accents = config.get("strip_accents").and_then(Value::as_bool);
    let chinese = config
        .get("tokenize_chinese_chars")
        .and_then(Value::as_bool)
        .unwrap_or(true);
    let vocab_str = vocab
        .to_str()
        .ok_or_else(|| tokenizer_error(vocab, "path is not UTF-8"))?;
    let model = WordPiece::from_file(vocab_str)
        .unk_token(unk)
        .continuing_subword_prefix("##".into())
        .max_input_chars_per_word(100)
        .build()
        .map_err(|e| tokenizer_error(vocab, e))?;
    let cls_id = model_token_id(&model, &cls, vocab)?;
    let sep_id = model_token_id(&model, &sep, vocab)?;
    let mut tokenizer = Tokenizer::new(model);
    tokenizer
        .with_normalizer(Some(BertNormalizer::new(
            true,
            chinese,
            strip_accents,
            lowercase,
        )))
        .with_pre_tokenizer(Some(BertPreTokenizer))
        .with_post_processor(Some(BertProcessing::new((sep, sep_id), (cls, cls_id))))
        .with_decoder(Some(WordPieceDecoder::new("##".into(), true)));
    let mut specials: Vec<tokenizers::AddedToken> = [
        "unk_token",
        "sep_token",
        "pad_token",
        "cls_token",
        "mask_token",
    ]
    .iter()
    .filter_map(|k| config.get(*k).and_then(token_content))
    .map(|t| tokenizers::AddedToken::from(t, true))
    .collect();
    if specials.is_empty() {
        specials = ["[UNK]", "[SEP]", "[PAD]", "[CLS]", "[MASK]"]
            .iter()
            .map(|t| tokenizers::AddedToken::from(t.to_string(), true))
            .collect();
    }
    tokenizer.add_special_tokens(&specials);
    Ok(tokenizer)
}

fn model_token_id(model: &WordPiece, token: &str, vocab: &Path) -> Result<u32> {
    use tokenizers::Model;
    model.token_to_id(token).ok_or_else(|| {
        tokenizer_error(
            vocab,
            format!("special token '{token}' is not in the vocabulary"),
        )
    })
}

/// Where a tokenizer was loaded from (for messages).
pub fn tokenizer_source(dir: &Path) -> PathBuf {
    let json = dir.join("tokenizer.json");
    if json.exists() {
        json
    } else {
        dir.join("vocab.txt")
    }
}
