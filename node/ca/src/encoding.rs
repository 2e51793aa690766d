//! Certificate bundles on the wire: the PKCS#7 certs-only message EST
//! answers with (RFC 7030 4.1.3, 4.2.3; RFC 5652 SignedData with no signers),
//! and the x5bag a manufacturer hands a CA its factory certificates in (a
//! CBOR array of byte strings, RFC 9360).

/// One DER TLV with a short-form tag.
fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
    out.extend_from_slice(content);
    out
}

const OID_SIGNED_DATA: [u8; 9] = [0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x02];
const OID_DATA: [u8; 9] = [0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x01];

/// A degenerate SignedData carrying `certs` (each DER), DER. Its SET OF
/// certificates is sorted as DER requires.
pub fn certs_only(certs: &[&[u8]]) -> Vec<u8> {
    let mut sorted: Vec<&[u8]> = certs.to_vec();
    sorted.sort();
    sorted.dedup();
    let set: Vec<u8> = sorted.concat();
    let signed_data = [
        tlv(0x02, &[1]),                  // version 1
        tlv(0x31, &[]),                   // digestAlgorithms: none
        tlv(0x30, &tlv(0x06, &OID_DATA)), // encapContentInfo: id-data, no content
        tlv(0xa0, &set),                  // certificates [0] IMPLICIT SET OF
        tlv(0x31, &[]),                   // signerInfos: none
    ]
    .concat();
    tlv(
        0x30,
        &[
            tlv(0x06, &OID_SIGNED_DATA),
            tlv(0xa0, &tlv(0x30, &signed_data)),
        ]
        .concat(),
    )
}

fn cbor_head(major: u8, n: u64) -> Vec<u8> {
    let m = major << 5;
    match n {
        0..=23 => vec![m | n as u8],
        24..=0xff => vec![m | 24, n as u8],
        0x100..=0xffff => [vec![m | 25], (n as u16).to_be_bytes().to_vec()].concat(),
        0x1_0000..=0xffff_ffff => [vec![m | 26], (n as u32).to_be_bytes().to_vec()].concat(),
        _ => [vec![m | 27], n.to_be_bytes().to_vec()].concat(),
    }
}

/// An x5bag: a CBOR array of the certificates (DER) as byte strings.
pub fn x5bag(certs: &[&[u8]]) -> Vec<u8> {
    let mut out = cbor_head(4, certs.len() as u64);
    for c in certs {
        out.extend(cbor_head(2, c.len() as u64));
        out.extend_from_slice(c);
    }
    out
}

/// Reads an x5bag back: the certificates' DER, or why not. A single
/// certificate as a bare byte string is accepted too (RFC 9360 allows it).
pub fn read_x5bag(bytes: &[u8], max_certs: usize) -> Result<Vec<Vec<u8>>, String> {
    fn head(bytes: &[u8], at: &mut usize) -> Result<(u8, u64), String> {
        let b = *bytes.get(*at).ok_or("truncated")?;
        *at += 1;
        let (major, info) = (b >> 5, b & 0x1f);
        let width = match info {
            0..=23 => return Ok((major, u64::from(info))),
            24 => 1,
            25 => 2,
            26 => 4,
            27 => 8,
            _ => return Err("indefinite or reserved length".into()),
        };
        let end = *at + width;
        let raw = bytes.get(*at..end).ok_or("truncated")?;
        *at = end;
        Ok((
            major,
            raw.iter().fold(0u64, |n, b| (n << 8) | u64::from(*b)),
        ))
    }
    let mut at = 0;
    let mut out = Vec::new();
    let byte_string = |at: &mut usize, len: u64| -> Result<Vec<u8>, String> {
        let len = usize::try_from(len).map_err(|_| "too long")?;
        let end = at.checked_add(len).ok_or("too long")?;
        let v = bytes.get(*at..end).ok_or("truncated")?.to_vec();
        *at = end;
        Ok(v)
    };
    match head(bytes, &mut at)? {
        (2, len) => out.push(byte_string(&mut at, len)?),
        (4, count) => {
            if count > max_certs as u64 {
                return Err(format!(
                    "{count} certificates, over the limit of {max_certs}"
                ));
            }
            for _ in 0..count {
                match head(bytes, &mut at)? {
                    (2, len) => out.push(byte_string(&mut at, len)?),
                    _ => return Err("an element is not a byte string".into()),
                }
            }
        }
        _ => return Err("not an array of byte strings".into()),
    }
    if at != bytes.len() {
        return Err("bytes after the bag".into());
    }
    Ok(out)
}

/// The DER of a certificate, request or CRL given as DER or as PEM (the
/// first block, which must carry `label`).
pub fn der_from_pem_or_der(bytes: &[u8], label: &str) -> Result<Vec<u8>, String> {
    if bytes.first() == Some(&0x30) {
        return Ok(bytes.to_vec());
    }
    let text = std::str::from_utf8(bytes).map_err(|_| "neither DER nor PEM".to_string())?;
    let begin = format!("-----BEGIN {label}-----");
    let start = text
        .find(&begin)
        .ok_or_else(|| format!("no {begin} block"))?;
    let end_marker = format!("-----END {label}-----");
    let end = text[start..]
        .find(&end_marker)
        .map(|e| start + e + end_marker.len())
        .ok_or_else(|| format!("no {end_marker}"))?;
    let (found, der) =
        der::pem::decode_vec(&text.as_bytes()[start..end]).map_err(|e| format!("bad PEM: {e}"))?;
    if found != label {
        return Err(format!("a {found} block, not {label}"));
    }
    Ok(der)
}

/// PEM of `der` under `label`, lines of 64.
pub fn pem(label: &str, der: &[u8]) -> String {
    der::pem::encode_string(label, der::pem::LineEnding::LF, der)
        .expect("PEM of bytes always encodes")
}

/// One DER TLV at the start of `bytes`: (tag, content, the rest).
fn read_tlv(bytes: &[u8]) -> Result<(u8, &[u8], &[u8]), String> {
    let (&tag, rest) = bytes.split_first().ok_or("truncated")?;
    let (&first, rest) = rest.split_first().ok_or("truncated")?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return Err("bad length".into());
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |l, b| (l << 8) | usize::from(*b));
        (len, &rest[n..])
    };
    if rest.len() < len {
        return Err("truncated".into());
    }
    Ok((tag, &rest[..len], &rest[len..]))
}

/// The certificates (DER) of a PKCS#7 certs-only message, as EST answers.
pub fn read_certs_only(der: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    let (tag, info, _) = read_tlv(der)?;
    if tag != 0x30 {
        return Err("not a ContentInfo".into());
    }
    let (tag, oid, rest) = read_tlv(info)?;
    if tag != 0x06 || oid != OID_SIGNED_DATA {
        return Err("not SignedData".into());
    }
    let (_, explicit, _) = read_tlv(rest)?;
    let (_, mut signed, _) = read_tlv(explicit)?;
    // version, digestAlgorithms, encapContentInfo, then [0] certificates.
    for _ in 0..3 {
        signed = read_tlv(signed)?.2;
    }
    let (tag, mut certs, _) = read_tlv(signed)?;
    if tag != 0xa0 {
        return Err("no certificates".into());
    }
    let mut out = Vec::new();
    while !certs.is_empty() {
        let (_, _, rest) = read_tlv(certs)?;
        out.push(certs[..certs.len() - rest.len()].to_vec());
        certs = rest;
    }
    Ok(out)
}
