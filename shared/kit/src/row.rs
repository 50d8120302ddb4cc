//! Column types that `sqlx::Any` cannot decode on its own, for rows mapped
//! by `#[derive(sqlx::FromRow)]`.
//!
//! `Any` decodes only the portable primitives (integers, floats, text,
//! bytes), so a flag stored as 0/1 and a value stored as JSON text are read
//! as [`Bit`] or [`JsonText`] and converted into the field's own type with
//! `#[sqlx(try_from = "…")]`. The row keeps plain types (`bool`,
//! `Vec<String>`), so nothing else sees the storage spelling. An enum
//! stored as text converts the same way (`impl TryFrom<String> for Status`
//! failing with [`decode_error`]).
//!
//! ```
//! use tenantry_kit::row::{Bit, JsonText};
//!
//! #[derive(sqlx::FromRow)]
//! struct MembershipRow {
//!     user_id: String,
//!     #[sqlx(try_from = "JsonText")]
//!     roles: Vec<String>,
//!     #[sqlx(try_from = "Bit")]
//!     active: bool,
//! }
//! ```

use std::collections::{BTreeMap, HashMap};

use sqlx::any::{AnyTypeInfo, AnyValueRef};
use sqlx::error::BoxDynError;
use sqlx::{Any, Decode, Type};

/// A boolean stored as 0 or 1 (SQLite has no boolean type).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bit(i64);

impl Type<Any> for Bit {
    fn type_info() -> AnyTypeInfo {
        <i64 as Type<Any>>::type_info()
    }

    fn compatible(ty: &AnyTypeInfo) -> bool {
        <i64 as Type<Any>>::compatible(ty)
    }
}

impl<'r> Decode<'r, Any> for Bit {
    fn decode(value: AnyValueRef<'r>) -> Result<Self, BoxDynError> {
        <i64 as Decode<Any>>::decode(value).map(Bit)
    }
}

impl TryFrom<Bit> for bool {
    type Error = sqlx::Error;

    fn try_from(bit: Bit) -> Result<bool, sqlx::Error> {
        match bit.0 {
            0 => Ok(false),
            1 => Ok(true),
            other => Err(decode_error(format!("a flag is 0 or 1, not {other}"))),
        }
    }
}

/// A value stored as JSON text. Kit converts it into the plain containers
/// services store this way; a service converts it into its own types with
/// [`JsonText::parse`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonText(String);

impl JsonText {
    /// The stored value, parsed.
    pub fn parse<T: serde::de::DeserializeOwned>(&self) -> Result<T, sqlx::Error> {
        serde_json::from_str(&self.0).map_err(|e| sqlx::Error::Decode(Box::new(e)))
    }
}

impl Type<Any> for JsonText {
    fn type_info() -> AnyTypeInfo {
        <String as Type<Any>>::type_info()
    }

    fn compatible(ty: &AnyTypeInfo) -> bool {
        <String as Type<Any>>::compatible(ty)
    }
}

impl<'r> Decode<'r, Any> for JsonText {
    fn decode(value: AnyValueRef<'r>) -> Result<Self, BoxDynError> {
        <String as Decode<Any>>::decode(value).map(JsonText)
    }
}

/// The containers services keep as JSON text.
macro_rules! json_containers {
    ($($ty:ty),* $(,)?) => {$(
        impl TryFrom<JsonText> for $ty {
            type Error = sqlx::Error;

            fn try_from(text: JsonText) -> Result<Self, sqlx::Error> {
                text.parse()
            }
        }
    )*};
}

json_containers!(
    Vec<String>,
    BTreeMap<String, String>,
    BTreeMap<String, bool>,
    HashMap<String, String>,
);

/// The text to bind for a value stored as JSON.
pub fn json<T: serde::Serialize + ?Sized>(value: &T) -> String {
    serde_json::to_string(value).expect("values of plain data serialize")
}

/// The decode error of a column whose value its type refuses.
pub fn decode_error(message: impl Into<String>) -> sqlx::Error {
    sqlx::Error::Decode(message.into().into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_are_zero_or_one() {
        assert!(!bool::try_from(Bit(0)).unwrap());
        assert!(bool::try_from(Bit(1)).unwrap());
        assert!(bool::try_from(Bit(2)).is_err());
    }

    #[test]
    fn json_text_round_trips_and_refuses_garbage() {
        let roles = vec!["admin".to_string()];
        let back = Vec::<String>::try_from(JsonText(json(&roles))).unwrap();
        assert_eq!(back, roles);
        assert!(Vec::<String>::try_from(JsonText("not json".into())).is_err());
    }
}
