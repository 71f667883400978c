//! Validators: check digits and allowed ranges of each identifier. Pure functions of
//! ASCII input; they never panic, whatever the bytes.

/// Luhn (mod 10) check over ASCII digits; false if any byte is not a digit.
pub fn luhn(digits: &[u8]) -> bool {
    let mut sum = 0u32;
    for (i, &b) in digits.iter().rev().enumerate() {
        if !b.is_ascii_digit() {
            return false;
        }
        let mut d = u32::from(b - b'0');
        if i % 2 == 1 {
            d *= 2;
            if d > 9 {
                d -= 9;
            }
        }
        sum += d;
    }
    !digits.is_empty() && sum.is_multiple_of(10)
}

/// NPI: 10 digits, starting with 1 or 2, whose Luhn check includes the `80840` prefix
/// of the ISO card issuer identifier for US health.
pub fn npi(d: &[u8]) -> bool {
    if d.len() != 10 || !(d[0] == b'1' || d[0] == b'2') {
        return false;
    }
    let mut full = [0u8; 15];
    full[..5].copy_from_slice(b"80840");
    full[5..].copy_from_slice(d);
    luhn(&full)
}

/// DEA registration number: registrant-type letter, a second letter (the registrant's
/// last name initial, or 9 for some business types), six digits and a check digit:
/// (d1 + d3 + d5 + 2 * (d2 + d4 + d6)) mod 10.
pub fn dea(s: &[u8]) -> bool {
    if s.len() != 9 {
        return false;
    }
    const REGISTRANT: &[u8] = b"ABCDEFGHJKLMPRSTUX";
    if !REGISTRANT.contains(&s[0]) || !(s[1].is_ascii_uppercase() || s[1] == b'9') {
        return false;
    }
    if !s[2..].iter().all(u8::is_ascii_digit) {
        return false;
    }
    let d: Vec<u32> = s[2..].iter().map(|b| u32::from(b - b'0')).collect();
    let check = (d[0] + d[2] + d[4] + 2 * (d[1] + d[3] + d[5])) % 10;
    check == d[6]
}

/// SSN ranges: area 001-899 except 666, group 01-99, serial 0001-9999; and not one of
/// the numbers used in advertising and examples (078-05-1120, 219-09-9999,
/// 123-45-6789, 987-65-4320 to 4329) or a single repeated digit.
pub fn ssn(area: u32, group: u32, serial: u32) -> bool {
    if area == 0 || area == 666 || area >= 900 || group == 0 || group > 99 || serial == 0 || serial > 9999 {
        return false;
    }
    let repeated = |d: u32| area == d * 111 && group == d * 11 && serial == d * 1111;
    if (1..=9).any(repeated) {
        return false;
    }
    !matches!((area, group, serial), (78, 5, 1120) | (219, 9, 9999) | (123, 45, 6789))
}

/// SSN from 9 ASCII digits.
pub fn ssn_digits(d: &[u8]) -> bool {
    if d.len() != 9 || !d.iter().all(u8::is_ascii_digit) {
        return false;
    }
    ssn(number(&d[..3]), number(&d[3..5]), number(&d[5..]))
}

/// Medicare Beneficiary Identifier (CMS format): 11 characters,
/// `C A AN N A AN N A A N N` where C is 1-9, N a digit, A a letter other than
/// S, L, O, I, B, Z, and AN either.
pub fn mbi(s: &[u8]) -> bool {
    if s.len() != 11 {
        return false;
    }
    let letter = |b: u8| b.is_ascii_uppercase() && !b"SLOIBZ".contains(&b);
    let digit = |b: u8| b.is_ascii_digit();
    let alnum = |b: u8| letter(b) || digit(b);
    (b'1'..=b'9').contains(&s[0])
        && letter(s[1])
        && alnum(s[2])
        && digit(s[3])
        && letter(s[4])
        && alnum(s[5])
        && digit(s[6])
        && letter(s[7])
        && letter(s[8])
        && digit(s[9])
        && digit(s[10])
}

/// NANP number: area code (NPA) and exchange (NXX) both start with 2-9.
///
/// N11 codes (211, 411, 911) are not assigned as area codes or exchanges, but a number
/// written in phone format with one is still someone's (mistyped or fictional) phone
/// number in practice, so they are not rejected here; the 0/1 first-digit rule is what
/// tells phone numbers from other 10-digit numbers.
pub fn nanp(npa: &[u8], nxx: &[u8], line: &[u8]) -> bool {
    let ok3 = |g: &[u8]| g.len() == 3 && g.iter().all(u8::is_ascii_digit) && g[0] >= b'2';
    ok3(npa) && ok3(nxx) && line.len() == 4 && line.iter().all(u8::is_ascii_digit)
}

/// Payment card issuer ranges (IIN prefixes and lengths) of the major networks.
pub fn card_issuer(d: &[u8]) -> Option<&'static str> {
    let len = d.len();
    let prefix = |n: usize| -> u32 { if d.len() >= n { number(&d[..n]) } else { 0 } };
    let p1 = prefix(1);
    let p2 = prefix(2);
    let p3 = prefix(3);
    let p4 = prefix(4);
    let p6 = prefix(6);
    if p1 == 4 && matches!(len, 13 | 16 | 19) {
        return Some("visa");
    }
    if ((51..=55).contains(&p2) || (2221..=2720).contains(&p4)) && len == 16 {
        return Some("mastercard");
    }
    if (p2 == 34 || p2 == 37) && len == 15 {
        return Some("amex");
    }
    if (p4 == 6011 || p2 == 65 || (644..=649).contains(&p3) || (622126..=622925).contains(&p6))
        && (16..=19).contains(&len)
    {
        return Some("discover");
    }
    if (3528..=3589).contains(&p4) && (16..=19).contains(&len) {
        return Some("jcb");
    }
    if ((300..=305).contains(&p3) || p2 == 36 || p2 == 38 || p2 == 39) && (14..=19).contains(&len) {
        return Some("diners");
    }
    if p2 == 62 && (16..=19).contains(&len) {
        return Some("unionpay");
    }
    None
}

/// A payment card number: known issuer range and Luhn.
pub fn card(d: &[u8]) -> bool {
    (13..=19).contains(&d.len()) && card_issuer(d).is_some() && luhn(d)
}

/// A calendar date.
pub fn date(year: u32, month: u32, day: u32) -> bool {
    if !(1..=12).contains(&month) || day == 0 {
        return false;
    }
    let leap = (year.is_multiple_of(4) && !year.is_multiple_of(100)) || year.is_multiple_of(400);
    let days = match month {
        2 if leap => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    };
    day <= days
}

/// A plausible year of birth (four digits).
pub fn birth_year(year: u32) -> bool {
    (1880..=2035).contains(&year)
}

/// Value of ASCII digits (saturating; non-digits count as 0). For short groups only.
pub fn number(d: &[u8]) -> u32 {
    d.iter().fold(0u32, |acc, &b| acc.saturating_mul(10).saturating_add(u32::from(b.wrapping_sub(b'0')).min(9)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn luhn_known_values() {
        assert!(luhn(b"4111111111111111"));
        assert!(!luhn(b"4111111111111112"));
        assert!(!luhn(b""));
        assert!(!luhn(b"41x1"));
    }

    #[test]
    fn npi_check_digit() {
        assert!(npi(b"1234567893")); // the CMS example
        assert!(!npi(b"1234567894"));
        assert!(!npi(b"3234567893")); // must start with 1 or 2
        assert!(!npi(b"123456789"));
    }

    #[test]
    fn dea_check_digit() {
        // 1+3+5 + 2*(2+4+6) = 33 -> 3
        assert!(dea(b"AB1234563"));
        assert!(!dea(b"AB1234564"));
        assert!(!dea(b"IB1234563")); // I is not a registrant type
        assert!(dea(b"G91234563"));
        assert!(!dea(b"AB123456"));
    }

    #[test]
    fn ssn_ranges() {
        assert!(ssn_digits(b"219456789"));
        assert!(!ssn_digits(b"123456789")); // the example number
        assert!(!ssn_digits(b"555555555"));
        assert!(!ssn_digits(b"000123456"));
        assert!(!ssn_digits(b"666123456"));
        assert!(!ssn_digits(b"912345678"));
        assert!(!ssn_digits(b"123006789"));
        assert!(!ssn_digits(b"123450000"));
        assert!(!ssn_digits(b"078051120"));
    }

    #[test]
    fn mbi_character_rules() {
        assert!(mbi(b"1EG4TE5MK73")); // the CMS example
        assert!(mbi(b"3C01TE8PD33"));
        assert!(!mbi(b"0EG4TE5MK73")); // first must be 1-9
        assert!(!mbi(b"1SG4TE5MK73")); // S is excluded
        assert!(!mbi(b"1EG4TE5MK7A"));
        assert!(!mbi(b"1eg4te5mk73"));
    }

    #[test]
    fn nanp_rules() {
        assert!(nanp(b"617", b"555", b"1234"));
        assert!(!nanp(b"117", b"555", b"1234"));
        assert!(!nanp(b"617", b"155", b"1234"));
        assert!(!nanp(b"617", b"555", b"123"));
    }

    #[test]
    fn card_ranges_and_luhn() {
        assert!(card(b"4111111111111111"));
        assert!(card(b"5500000000000004"));
        assert!(card(b"378282246310005"));
        assert!(card(b"6011111111111117"));
        assert!(!card(b"4111111111111112")); // Luhn fails
        assert!(!card(b"9111111111111111")); // no issuer
        assert!(!card(b"378282246310005000"));
    }

    #[test]
    fn dates() {
        assert!(date(2000, 2, 29));
        assert!(!date(1900, 2, 29));
        assert!(!date(2001, 4, 31));
        assert!(!date(2001, 13, 1));
    }
}
