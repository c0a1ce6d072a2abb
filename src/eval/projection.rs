//! Principal component analysis to two dimensions, computed exactly in f64: the covariance of the
//! rows, then all of its eigenvectors (Householder tridiagonalisation and the implicit QL
//! algorithm, after JAMA's public-domain `EigenvalueDecomposition`), of which the top two are kept.

use anyhow::{bail, Result};

use super::SplitEmbeddings;

/// The two leading principal components of a set of rows.
#[derive(Debug, Clone)]
pub struct Pca {
    pub mean: Vec<f64>,
    /// Unit vectors, the first of larger variance. Each is signed so that its entry of largest
    /// magnitude is positive (the first such entry on a tie).
    pub components: [Vec<f64>; 2],
    /// The variance along each component (the covariance's eigenvalues, divided by rows − 1).
    pub variances: [f64; 2],
    /// The total variance (the covariance's trace).
    pub total_variance: f64,
}

impl Pca {
    /// Coordinates of `row` along the two components, relative to the mean.
    pub fn project(&self, row: &[f32]) -> [f64; 2] {
        let along = |component: &[f64]| row.iter().zip(&self.mean).zip(component).map(|((&x, m), c)| (x as f64 - m) * c).sum();
        [along(&self.components[0]), along(&self.components[1])]
    }

    /// The share of the total variance along each component (0 when all rows are equal).
    pub fn explained(&self) -> [f64; 2] {
        let total = self.total_variance;
        self.variances.map(|v| if total > 0.0 { v / total } else { 0.0 })
    }
}

/// The PCA of the rows of all `sets` together, each a row-major `[rows, dim]` matrix.
pub fn pca_2d(sets: &[&[f32]], dim: usize) -> Result<Pca> {
    if dim < 2 {
        bail!("a 2-D projection needs rows of at least 2 dimensions, got {dim}");
    }
    if let Some(set) = sets.iter().find(|set| set.len() % dim != 0) {
        bail!("{} values do not make rows of {dim}", set.len());
    }
    let rows = || sets.iter().flat_map(|set| set.chunks_exact(dim));
    let n = rows().count();
    if n < 2 {
        bail!("a 2-D projection needs at least 2 rows, got {n}");
    }
    if rows().flatten().any(|x| !x.is_finite()) {
        bail!("the rows hold a NaN or infinite value");
    }
    let mut mean = vec![0f64; dim];
    for row in rows() {
        mean.iter_mut().zip(row).for_each(|(m, &x)| *m += x as f64);
    }
    mean.iter_mut().for_each(|m| *m /= n as f64);
    // The upper triangle of the covariance, then mirrored.
    let mut cov = vec![0f64; dim * dim];
    let mut centred = vec![0f64; dim];
    for row in rows() {
        centred.iter_mut().zip(row).zip(&mean).for_each(|((c, &x), m)| *c = x as f64 - m);
        for i in 0..dim {
            let ci = centred[i];
            cov[i * dim + i..(i + 1) * dim].iter_mut().zip(&centred[i..]).for_each(|(s, &cj)| *s += ci * cj);
        }
    }
    for i in 0..dim {
        for j in i..dim {
            let v = cov[i * dim + j] / (n - 1) as f64;
            cov[i * dim + j] = v;
            cov[j * dim + i] = v;
        }
    }
    let total_variance = (0..dim).map(|i| cov[i * dim + i]).sum();
    let (values, vectors) = symmetric_eigen(cov, dim)?;
    let component = |k: usize| {
        let mut v: Vec<f64> = (0..dim).map(|row| vectors[row * dim + k]).collect();
        let largest = v.iter().fold(0f64, |m, x| m.max(x.abs()));
        if v.iter().find(|x| x.abs() == largest).is_some_and(|x| *x < 0.0) {
            v.iter_mut().for_each(|x| *x = -*x);
        }
        v
    };
    Ok(Pca { mean, components: [component(dim - 1), component(dim - 2)], variances: [values[dim - 1], values[dim - 2]], total_variance })
}

/// The images and captions of a split, projected together onto their two leading components.
#[derive(Debug, Clone)]
pub struct EmbeddingProjection {
    pub images: Vec<[f64; 2]>,
    pub texts: Vec<[f64; 2]>,
    /// The share of the variance along each axis.
    pub explained: [f64; 2],
}

pub fn project_embeddings(embeddings: &SplitEmbeddings) -> Result<EmbeddingProjection> {
    let dim = embeddings.dim;
    let pca = pca_2d(&[&embeddings.images, &embeddings.texts], dim)?;
    let project = |rows: &[f32]| rows.chunks_exact(dim).map(|row| pca.project(row)).collect();
    Ok(EmbeddingProjection { images: project(&embeddings.images), texts: project(&embeddings.texts), explained: pca.explained() })
}

/// The eigen-decomposition of the symmetric row-major `n × n` matrix `a`: the eigenvalues in
/// ascending order, and the eigenvectors as the columns of a row-major `n × n` matrix.
pub fn symmetric_eigen(a: Vec<f64>, n: usize) -> Result<(Vec<f64>, Vec<f64>)> {
    if a.len() != n * n {
        bail!("expected a {n} × {n} matrix, got {} values", a.len());
    }
    if a.iter().any(|x| !x.is_finite()) {
        bail!("the matrix holds a NaN or infinite value");
    }
    if n == 0 {
        return Ok((Vec::new(), Vec::new()));
    }
    let mut v = a;
    let mut d = vec![0f64; n];
    let mut e = vec![0f64; n];
    tridiagonalise(&mut v, &mut d, &mut e, n);
    ql_implicit(&mut v, &mut d, &mut e, n)?;
    Ok((d, v))
}

/// Householder reduction of `v` (symmetric) to tridiagonal form: the diagonal into `d`, the
/// subdiagonal into `e[1..]`, and the orthogonal transformation into `v`.
fn tridiagonalise(v: &mut [f64], d: &mut [f64], e: &mut [f64], n: usize) {
    let at = |i: usize, j: usize| i * n + j;
    for j in 0..n {
        d[j] = v[at(n - 1, j)];
    }
    for i in (1..n).rev() {
        let scale: f64 = d[..i].iter().map(|x| x.abs()).sum();
        let mut h = 0.0;
        if scale == 0.0 {
            e[i] = d[i - 1];
            for j in 0..i {
                d[j] = v[at(i - 1, j)];
                v[at(i, j)] = 0.0;
                v[at(j, i)] = 0.0;
            }
        } else {
            for k in 0..i {
                d[k] /= scale;
                h += d[k] * d[k];
            }
            let mut f = d[i - 1];
            let mut g = if f > 0.0 { -h.sqrt() } else { h.sqrt() };
            e[i] = scale * g;
            h -= f * g;
            d[i - 1] = f - g;
            e[..i].iter_mut().for_each(|x| *x = 0.0);
            for j in 0..i {
                f = d[j];
                v[at(j, i)] = f;
                g = e[j] + v[at(j, j)] * f;
                for k in j + 1..i {
                    g += v[at(k, j)] * d[k];
                    e[k] += v[at(k, j)] * f;
                }
                e[j] = g;
            }
            f = 0.0;
            for j in 0..i {
                e[j] /= h;
                f += e[j] * d[j];
            }
            let hh = f / (h + h);
            for j in 0..i {
                e[j] -= hh * d[j];
            }
            for j in 0..i {
                f = d[j];
                g = e[j];
                for k in j..i {
                    v[at(k, j)] -= f * e[k] + g * d[k];
                }
                d[j] = v[at(i - 1, j)];
                v[at(i, j)] = 0.0;
            }
        }
        d[i] = h;
    }
    // Accumulate the transformations.
    for i in 0..n - 1 {
        v[at(n - 1, i)] = v[at(i, i)];
        v[at(i, i)] = 1.0;
        let h = d[i + 1];
        if h != 0.0 {
            for k in 0..=i {
                d[k] = v[at(k, i + 1)] / h;
            }
            for j in 0..=i {
                let g: f64 = (0..=i).map(|k| v[at(k, i + 1)] * v[at(k, j)]).sum();
                for k in 0..=i {
                    v[at(k, j)] -= g * d[k];
                }
            }
        }
        for k in 0..=i {
            v[at(k, i + 1)] = 0.0;
        }
    }
    for j in 0..n {
        d[j] = v[at(n - 1, j)];
        v[at(n - 1, j)] = 0.0;
    }
    v[at(n - 1, n - 1)] = 1.0;
    e[0] = 0.0;
}

/// The implicit QL algorithm on the tridiagonal matrix (`d`, `e`), accumulating into `v`; sorts
/// the eigenvalues ascending with their vectors.
fn ql_implicit(v: &mut [f64], d: &mut [f64], e: &mut [f64], n: usize) -> Result<()> {
    const MAX_ITERATIONS: usize = 64;
    let at = |i: usize, j: usize| i * n + j;
    for i in 1..n {
        e[i - 1] = e[i];
    }
    e[n - 1] = 0.0;
    let mut f = 0.0;
    let mut tst1 = 0f64;
    let eps = f64::EPSILON;
    for l in 0..n {
        tst1 = tst1.max(d[l].abs() + e[l].abs());
        let mut m = l;
        while m < n - 1 && e[m].abs() > eps * tst1 {
            m += 1;
        }
        if m > l {
            let mut iterations = 0;
            loop {
                iterations += 1;
                if iterations > MAX_ITERATIONS {
                    bail!("the eigen-decomposition did not converge in {MAX_ITERATIONS} iterations");
                }
                let mut g = d[l];
                let mut p = (d[l + 1] - g) / (2.0 * e[l]);
                let mut r = p.hypot(1.0);
                if p < 0.0 {
                    r = -r;
                }
                d[l] = e[l] / (p + r);
                d[l + 1] = e[l] * (p + r);
                let dl1 = d[l + 1];
                let mut h = g - d[l];
                d[l + 2..n].iter_mut().for_each(|x| *x -= h);
                f += h;
                p = d[m];
                let (mut c, mut c2, mut c3) = (1.0, 1.0, 1.0);
                let el1 = e[l + 1];
                let (mut s, mut s2) = (0.0, 0.0);
                for i in (l..m).rev() {
                    c3 = c2;
                    c2 = c;
                    s2 = s;
                    g = c * e[i];
                    h = c * p;
                    r = p.hypot(e[i]);
                    e[i + 1] = s * r;
                    s = e[i] / r;
                    c = p / r;
                    p = c * d[i] - s * g;
                    d[i + 1] = h + s * (c * g + s * d[i]);
                    for k in 0..n {
                        h = v[at(k, i + 1)];
                        v[at(k, i + 1)] = s * v[at(k, i)] + c * h;
                        v[at(k, i)] = c * v[at(k, i)] - s * h;
                    }
                }
                p = -s * s2 * c3 * el1 * e[l] / dl1;
                e[l] = s * p;
                d[l] = c * p;
                if e[l].abs() <= eps * tst1 {
                    break;
                }
            }
        }
        d[l] += f;
        e[l] = 0.0;
    }
    // Selection sort, ascending, moving the vectors along.
    for i in 0..n.saturating_sub(1) {
        let k = (i..n).fold(i, |k, j| if d[j] < d[k] { j } else { k });
        if k != i {
            d.swap(i, k);
            for row in 0..n {
                v.swap(at(row, i), at(row, k));
            }
        }
    }
    Ok(())
}
