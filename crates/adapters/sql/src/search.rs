//! What search matches, the same on every backend.

use jangteo_core::catalog::Product;

/// The lowercased text a product is searched by: handle, every title and description
/// in every locale, and the SKUs. Both backends match query terms as substrings of it.
pub(crate) fn search_text(p: &Product) -> String {
    let mut s = String::new();
    s.push_str(&p.handle);
    for t in p.title.0.values().chain(p.description.0.values()) {
        s.push('\n');
        s.push_str(t);
    }
    for v in &p.variants {
        s.push('\n');
        s.push_str(&v.sku);
    }
    s.to_lowercase()
}
