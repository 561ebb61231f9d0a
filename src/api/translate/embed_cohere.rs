//! OpenAI `/v1/embeddings` ⇄ Cohere `POST /v2/embed`.
//!
//! The request's `input` (a string or an array of strings) becomes
//! `texts`, copied as it is; token-array inputs have no Cohere counterpart
//! and are refused. Cohere requires an `input_type`: the client's
//! `input_type` (an extension field OpenAI does not have) is kept, else
//! `search_document`, the kind of text an OpenAI client usually embeds
//! for retrieval. `dimensions` becomes `output_dimension`; `user` is
//! dropped. Cohere's default truncation (the end of a text too long) is
//! kept.
//!
//! Floats are always asked for. `encoding_format: "base64"` (what the
//! official OpenAI SDKs send unless told otherwise) is answered as OpenAI
//! does, each vector as its little-endian `f32`s in base64, encoded here
//! from Cohere's floats: Cohere's own `base64` type is not that. The
//! response translation is told which the client asked for
//! ([`openai_embedding_format`]).
//!
//! The usage is `meta.billed_units.input_tokens`, what Cohere charges
//! (see [`crate::api::usage`]).

use super::raw::{document, Raw};
use super::write::{Arr, Obj};
use super::TranslateError;

/// How the client asked for its vectors (`encoding_format`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EmbeddingFormat {
    /// Arrays of numbers (OpenAI's default).
    Float,
    /// Little-endian `f32`s in base64.
    Base64,
}

/// The `encoding_format` of an OpenAI embeddings request; anything but
/// `base64` (refused by [`openai_embeddings_to_cohere`] when unknown)
/// reads as floats.
pub fn openai_embedding_format(body: &[u8]) -> EmbeddingFormat {
    match document(body) {
        Ok(request) if request.get("encoding_format").is_str_eq("base64") => {
            EmbeddingFormat::Base64
        }
        _ => EmbeddingFormat::Float,
    }
}

/// Translates an OpenAI embeddings request into a Cohere v2 embed body for
/// `upstream_model`.
pub fn openai_embeddings_to_cohere(
    body: &[u8],
    upstream_model: &str,
) -> Result<Vec<u8>, TranslateError> {
    let request = document(body)?;
    let [input, input_type, dimensions, encoding_format] =
        request.pick(["input", "input_type", "dimensions", "encoding_format"]);
    let all_strings = input.is_array() && input.elements().all(Raw::is_str);
    if !input.is_str() && !all_strings {
        return Err(if input.elements().next().is_some() {
            TranslateError::Unsupported("token-array `input`".into())
        } else {
            TranslateError::Invalid("`input` must be a string or an array of strings".into())
        });
    }
    if !(encoding_format.is_null()
        || encoding_format.is_str_eq("float")
        || encoding_format.is_str_eq("base64"))
    {
        return Err(TranslateError::Invalid(
            "`encoding_format` must be `float` or `base64`".into(),
        ));
    }
    if !(input_type.is_null() || input_type.is_str()) {
        return Err(TranslateError::Invalid(
            "`input_type` must be a string".into(),
        ));
    }
    let mut out = Vec::with_capacity(body.len() + 128);
    let mut top = Obj::open(&mut out);
    top.str("model", upstream_model);
    if input.is_str() {
        let mut texts = Arr::open(top.key("texts"));
        texts.item().extend_from_slice(input.text().as_bytes());
        texts.close();
    } else {
        top.raw("texts", input);
    }
    if input_type.is_str() {
        top.raw("input_type", input_type);
    } else {
        top.json("input_type", "\"search_document\"");
    }
    top.json("embedding_types", "[\"float\"]");
    if let Some(dimensions) = dimensions.as_u64() {
        top.u64("output_dimension", dimensions);
    }
    top.close();
    Ok(out)
}

/// Translates a Cohere v2 embed response into an OpenAI embeddings list
/// naming `client_model`, each vector in `format`.
pub fn cohere_embed_to_openai(
    body: &[u8],
    client_model: &str,
    format: EmbeddingFormat,
) -> Result<Vec<u8>, TranslateError> {
    let response = document(body)?;
    let [embeddings, meta] = response.pick(["embeddings", "meta"]);
    let vectors = embeddings.get("float");
    if !vectors.is_array() {
        return Err(TranslateError::Invalid(
            "response has no `embeddings.float` array".into(),
        ));
    }
    let mut out = Vec::with_capacity(body.len() + 128);
    let mut top = Obj::open(&mut out);
    top.json("object", "\"list\"");
    let mut data = Arr::open(top.key("data"));
    for (index, vector) in vectors.elements().enumerate() {
        if !vector.is_array() {
            return Err(TranslateError::Invalid(
                "an embedding is not an array".into(),
            ));
        }
        let mut item = Obj::open(data.item());
        item.json("object", "\"embedding\"");
        item.u64("index", index as u64);
        match format {
            EmbeddingFormat::Float => item.raw("embedding", vector),
            EmbeddingFormat::Base64 => write_base64_f32(vector, item.key("embedding"))?,
        }
        item.close();
    }
    data.close();
    top.str("model", client_model);
    let tokens = meta.get("billed_units").get("input_tokens");
    // Cohere's schema types its counts as numbers, not integers.
    let tokens = tokens.as_f64().map_or(0, |n| n.max(0.0) as u64);
    let mut usage = Obj::open(top.key("usage"));
    usage.u64("prompt_tokens", tokens);
    usage.u64("total_tokens", tokens);
    usage.close();
    top.close();
    Ok(out)
}

/// `vector`'s numbers as little-endian `f32`s, base64 with padding, in a
/// JSON string (base64 has nothing to escape).
fn write_base64_f32(vector: Raw<'_>, out: &mut Vec<u8>) -> Result<(), TranslateError> {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut bytes = Vec::with_capacity(vector.text().len() / 2);
    for number in vector.elements() {
        let Some(value) = number.as_f64() else {
            return Err(TranslateError::Invalid(
                "an embedding holds something other than numbers".into(),
            ));
        };
        bytes.extend_from_slice(&(value as f32).to_le_bytes());
    }
    out.push(b'"');
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | u32::from(b) << (16 - 8 * i));
        for i in 0..4 {
            out.push(if i <= chunk.len() {
                ALPHABET[(n >> (18 - 6 * i) & 63) as usize]
            } else {
                b'='
            });
        }
    }
    out.push(b'"');
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::aws::invoke::base64_decode;
    use serde_json::{json, Value};

    fn request(body: Value) -> Result<Value, TranslateError> {
        let out = openai_embeddings_to_cohere(body.to_string().as_bytes(), "embed-v4.0")?;
        Ok(serde_json::from_slice(&out).expect("the output is JSON"))
    }

    #[test]
    fn requests() {
        assert_eq!(
            request(json!({"model": "text-embedding-3-small", "input": "hello \"world\"", "user": "u", "dimensions": 1024, "encoding_format": "base64"}))
                .unwrap(),
            json!({"model": "embed-v4.0", "texts": ["hello \"world\""], "input_type": "search_document", "embedding_types": ["float"], "output_dimension": 1024})
        );
        assert_eq!(
            request(json!({"input": ["a", "b"], "input_type": "search_query", "encoding_format": "float"}))
                .unwrap(),
            json!({"model": "embed-v4.0", "texts": ["a", "b"], "input_type": "search_query", "embedding_types": ["float"]})
        );
        assert!(matches!(
            request(json!({"input": [1, 2, 3]})),
            Err(TranslateError::Unsupported(_))
        ));
        assert!(matches!(
            request(json!({"input": [[1, 2], [3]]})),
            Err(TranslateError::Unsupported(_))
        ));
        for bad in [
            json!({"input": 5}),
            json!({}),
            json!({"input": "x", "encoding_format": "int8"}),
            json!({"input": "x", "input_type": 3}),
        ] {
            assert!(
                matches!(request(bad.clone()), Err(TranslateError::Invalid(_))),
                "{bad}"
            );
        }
        assert_eq!(
            openai_embedding_format(br#"{"input":"x","encoding_format":"base64"}"#),
            EmbeddingFormat::Base64
        );
        assert_eq!(
            openai_embedding_format(br#"{"input":"x"}"#),
            EmbeddingFormat::Float
        );
    }

    /// The shape of the response example of Cohere's v2 embed reference.
    const RESPONSE: &str = r#"{"id":"da6e531f-54c6-4a73-bf92-f60566d8d753","embeddings":{"float":[[0.016296387,-0.008354187,-0.04699707],[-0.5,1.0e-3,3]]},"texts":["hello","goodbye"],"meta":{"api_version":{"version":"2"},"billed_units":{"input_tokens":2}},"response_type":"embeddings_by_type"}"#;

    #[test]
    fn float_responses() {
        let out = cohere_embed_to_openai(
            RESPONSE.as_bytes(),
            "text-embedding-3-small",
            EmbeddingFormat::Float,
        )
        .unwrap();
        let got: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(
            got,
            json!({
                "object": "list",
                "data": [
                    {"object": "embedding", "index": 0, "embedding": [0.016296387, -0.008354187, -0.04699707]},
                    {"object": "embedding", "index": 1, "embedding": [-0.5, 1.0e-3, 3]}
                ],
                "model": "text-embedding-3-small",
                "usage": {"prompt_tokens": 2, "total_tokens": 2}
            })
        );
    }

    #[test]
    fn base64_responses_are_little_endian_f32s() {
        let out =
            cohere_embed_to_openai(RESPONSE.as_bytes(), "m", EmbeddingFormat::Base64).unwrap();
        let got: Value = serde_json::from_slice(&out).unwrap();
        let decode = |i: usize| -> Vec<f32> {
            let text = got["data"][i]["embedding"].as_str().unwrap();
            base64_decode(text.as_bytes())
                .unwrap()
                .chunks(4)
                .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
                .collect()
        };
        assert_eq!(decode(0), [0.016296387f32, -0.008354187, -0.04699707]);
        assert_eq!(decode(1), [-0.5f32, 0.001, 3.0]);
        // 12 bytes, no padding; a lone float needs it.
        let one = r#"{"embeddings":{"float":[[1.0]]}}"#;
        let out = cohere_embed_to_openai(one.as_bytes(), "m", EmbeddingFormat::Base64).unwrap();
        let got: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(got["data"][0]["embedding"], "AACAPw==");
        assert_eq!(got["usage"]["total_tokens"], 0);
    }

    #[test]
    fn not_an_embed_response() {
        for body in [
            r#"{"message":"invalid api token"}"#,
            r#"{"embeddings":[[1.0]]}"#,
            r#"{"embeddings":{"float":[1.0]}}"#,
            r#"{"embeddings":{"int8":[[1]]}}"#,
        ] {
            assert!(
                matches!(
                    cohere_embed_to_openai(body.as_bytes(), "m", EmbeddingFormat::Float),
                    Err(TranslateError::Invalid(_))
                ),
                "{body}"
            );
        }
        assert!(matches!(
            cohere_embed_to_openai(
                br#"{"embeddings":{"float":[["x"]]}}"#,
                "m",
                EmbeddingFormat::Base64
            ),
            Err(TranslateError::Invalid(_))
        ));
    }
}
