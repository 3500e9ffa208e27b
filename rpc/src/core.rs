//! Bitcoin Core's answers, as far as rexe reads them, for [`crate::RpcClient::call_as`].
//! Hashes and scripts stay hex strings here (this crate does not depend on `bitcoin`);
//! callers parse them. Fields Core may leave out are `Option`s or have defaults, and
//! fields rexe does not read are ignored, so newer Core versions still parse.

use serde::Deserialize;

/// One entry of `getchaintips`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct ChainTip {
    /// Height of the tip.
    pub height: u64,
    /// Its hash.
    pub hash: String,
    /// Blocks from the tip down to the active chain (0 for the active tip).
    #[serde(default)]
    pub branchlen: u64,
    /// `active`, `valid-fork`, `valid-headers`, `headers-only` or `invalid`.
    pub status: String,
}

/// `getrawtransaction txid true`: the parts rexe reads.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct RawTransaction {
    /// The transaction, hex.
    pub hex: String,
    /// The block holding it, once confirmed.
    #[serde(default)]
    pub blockhash: Option<String>,
}

/// `getblock hash 1`: the parts rexe reads.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct BlockSummary {
    /// Confirmations on the active chain; -1 for a block on a stale branch.
    pub confirmations: i64,
    /// Height.
    pub height: u64,
    /// Its transactions' ids, in block order.
    pub tx: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn core_answers_parse_with_extra_and_missing_fields() {
        let tips: Vec<ChainTip> = serde_json::from_str(
            r#"[{"height":5,"hash":"aa","branchlen":0,"status":"active"},
                {"height":4,"hash":"bb","status":"valid-fork","extra":1}]"#,
        )
        .unwrap();
        assert_eq!(tips[1].branchlen, 0);
        assert_eq!(tips[1].status, "valid-fork");
        let tx: RawTransaction =
            serde_json::from_str(r#"{"hex":"00","txid":"cc","vin":[]}"#).unwrap();
        assert_eq!(tx.blockhash, None);
        let b: BlockSummary = serde_json::from_str(
            r#"{"confirmations":-1,"height":7,"tx":["dd"],"hash":"ee","nTx":1}"#,
        )
        .unwrap();
        assert_eq!((b.confirmations, b.height, b.tx.len()), (-1, 7, 1));
        assert!(serde_json::from_str::<BlockSummary>(r#"{"height":7}"#).is_err());
    }
}
