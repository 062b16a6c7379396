//! Views and shape copies against the address formula: transpose, permute,
//! narrow, broadcast, (un)squeeze and reshape change only the layout (the
//! storage is shared, every element is where the index map says); concat,
//! stack, index_select, index_add_into_zeros, flip and the 2x2 squeeze
//! (space_to_depth / depth_to_space) copy exactly what their definitions say.

use crate::strategies::{randn, shape};
use crate::tensor_kernels::{make_view, multi_indices, naive_values, view_spec, ViewSpec};
use flowzoo::tensor::Tensor;
use proptest::prelude::*;

/// A shape of rank 1 to 4 with axes of length 1 to 5, and a view spec for it.
fn shaped_view() -> impl Strategy<Value = (Vec<usize>, ViewSpec)> {
    shape(5).prop_flat_map(|s| {
        let rank = s.len();
        (Just(s), view_spec(rank, true))
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn permute_reads_input_axis_perm_k_at_output_axis_k(
        (shape, spec) in shaped_view(),
        perm_seed in any::<u64>(),
        seed in any::<u64>(),
    ) {
        let x = make_view(&shape, &spec, seed);
        // A permutation from the seed (Fisher–Yates with a tiny LCG).
        let mut perm: Vec<usize> = (0..shape.len()).collect();
        let mut state = perm_seed;
        for i in (1..perm.len()).rev() {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            perm.swap(i, (state >> 33) as usize % (i + 1));
        }
        let y = x.permute(&perm);
        prop_assert!(y.shares_storage_with(&x));
        let expected_shape: Vec<usize> = perm.iter().map(|&p| shape[p]).collect();
        prop_assert_eq!(y.shape(), &expected_shape[..]);
        for i in multi_indices(y.shape()) {
            let mut src = vec![0; shape.len()];
            for (k, &p) in perm.iter().enumerate() {
                src[p] = i[k];
            }
            prop_assert_eq!(y.get(&i), x.get(&src));
        }
        // to_vec and contiguous() read the same row-major order.
        prop_assert_eq!(y.to_vec(), naive_values(&y));
        prop_assert_eq!(y.contiguous().to_vec(), naive_values(&y));
        prop_assert!(y.contiguous().is_contiguous());
    }

    #[test]
    fn transpose_swaps_two_axes((shape, spec) in shaped_view(), a in 0usize..4, b in 0usize..4, seed in any::<u64>()) {
        let (a, b) = (a % shape.len(), b % shape.len());
        let x = make_view(&shape, &spec, seed);
        let y = x.transpose(a, b);
        prop_assert!(y.shares_storage_with(&x));
        for i in multi_indices(y.shape()) {
            let mut src = i.clone();
            src.swap(a, b);
            prop_assert_eq!(y.get(&i), x.get(&src));
        }
    }

    #[test]
    fn narrow_shifts_the_index((shape, spec) in shaped_view(), axis in 0usize..4, start in 0usize..5, len in 0usize..5, seed in any::<u64>()) {
        let axis = axis % shape.len();
        let start = start % shape[axis];
        let len = len.min(shape[axis] - start);
        let x = make_view(&shape, &spec, seed);
        let y = x.narrow(axis, start, len);
        prop_assert!(y.shares_storage_with(&x));
        for i in multi_indices(y.shape()) {
            let mut src = i.clone();
            src[axis] += start;
            prop_assert_eq!(y.get(&i), x.get(&src));
        }
        prop_assert_eq!(y.to_vec(), naive_values(&y));
    }

    #[test]
    fn broadcast_repeats_one_sized_and_new_axes(
        (shape, spec) in shaped_view(),
        lead in prop::collection::vec(1usize..=3, 0..=2),
        grow in prop::collection::vec(1usize..=3, 4),
        seed in any::<u64>(),
    ) {
        let x = make_view(&shape, &spec, seed);
        let target: Vec<usize> = lead
            .iter()
            .copied()
            .chain(shape.iter().enumerate().map(|(k, &n)| if n == 1 { grow[k] } else { n }))
            .collect();
        let y = x.broadcast_to(&target);
        prop_assert!(y.shares_storage_with(&x));
        for i in multi_indices(&target) {
            let src: Vec<usize> = (0..shape.len())
                .map(|k| if shape[k] == 1 { 0 } else { i[lead.len() + k] })
                .collect();
            prop_assert_eq!(y.get(&i), x.get(&src));
        }
        // Grown and new axes have stride 0.
        for k in 0..target.len() {
            if k < lead.len() || (shape[k - lead.len()] == 1 && target[k] != 1) {
                prop_assert_eq!(y.strides()[k], 0);
            }
        }
        prop_assert_eq!(y.to_vec(), naive_values(&y));
    }

    #[test]
    fn unsqueeze_and_squeeze_insert_and_remove_a_length_one_axis((shape, spec) in shaped_view(), axis in 0usize..5, seed in any::<u64>()) {
        let axis = axis % (shape.len() + 1);
        let x = make_view(&shape, &spec, seed);
        let y = x.unsqueeze(axis);
        prop_assert!(y.shares_storage_with(&x));
        prop_assert_eq!(y.dim(axis), 1);
        prop_assert_eq!(y.to_vec(), x.to_vec());
        let z = y.squeeze(axis);
        prop_assert_eq!(z.shape(), &shape[..]);
        prop_assert_eq!(z.layout(), x.layout());
    }

    #[test]
    fn reshape_keeps_row_major_order_and_is_a_view_exactly_when_contiguous(
        (shape, spec) in shaped_view(),
        split in 1usize..=3,
        seed in any::<u64>(),
    ) {
        let x = make_view(&shape, &spec, seed);
        let n = x.numel();
        // Flat, then a two-axis shape when the split divides the count.
        let targets = [vec![n], if n.is_multiple_of(split) { vec![split, n / split] } else { vec![1, n] }];
        for target in targets {
            let y = x.reshape(&target);
            prop_assert_eq!(y.shape(), &target[..]);
            prop_assert_eq!(y.to_vec(), naive_values(&x));
            prop_assert_eq!(y.shares_storage_with(&x), x.is_contiguous());
        }
    }

    #[test]
    fn concat_and_stack_join_in_order(
        (shape, spec) in shaped_view(),
        axis in 0usize..5,
        extra in prop::collection::vec(1usize..=3, 1..=3),
        seed in any::<u64>(),
    ) {
        // concat: parts differ along `axis` only.
        let axis_c = axis % shape.len();
        let mut parts = vec![make_view(&shape, &spec, seed)];
        for (j, &len) in extra.iter().enumerate() {
            let mut s = shape.clone();
            s[axis_c] = len;
            parts.push(randn(&s, seed ^ (j as u64 + 1)));
        }
        let refs: Vec<&Tensor<f64>> = parts.iter().collect();
        let joined = Tensor::concat(&refs, axis_c);
        let mut at = 0;
        for p in &parts {
            let len = p.dim(axis_c);
            prop_assert_eq!(joined.narrow(axis_c, at, len).to_vec(), naive_values(p));
            at += len;
        }
        prop_assert_eq!(at, joined.dim(axis_c));

        // stack: equal shapes along a new axis.
        let axis_s = axis % (shape.len() + 1);
        let same: Vec<Tensor<f64>> = (0..extra.len() + 1)
            .map(|j| if j == 0 { parts[0].clone() } else { randn(&shape, seed ^ (10 + j as u64)) })
            .collect();
        let refs: Vec<&Tensor<f64>> = same.iter().collect();
        let stacked = Tensor::stack(&refs, axis_s);
        prop_assert_eq!(stacked.dim(axis_s), same.len());
        for (j, p) in same.iter().enumerate() {
            let slice = stacked.narrow(axis_s, j, 1).squeeze(axis_s);
            prop_assert_eq!(slice.shape(), &shape[..]);
            prop_assert_eq!(slice.to_vec(), naive_values(p));
        }
    }

    #[test]
    fn index_select_and_index_add_are_transposes(
        (shape, spec) in shaped_view(),
        axis in 0usize..4,
        picks in prop::collection::vec(0usize..5, 0..7),
        seed in any::<u64>(),
    ) {
        let axis = axis % shape.len();
        let indices: Vec<usize> = picks.iter().map(|&i| i % shape[axis]).collect();
        let x = make_view(&shape, &spec, seed);
        let y = x.index_select(axis, &indices);
        for i in multi_indices(y.shape()) {
            let mut src = i.clone();
            src[axis] = indices[i[axis]];
            prop_assert_eq!(y.get(&i), x.get(&src));
        }
        // ⟨index_select(x), g⟩ = ⟨x, index_add_into_zeros(g)⟩, and repeated
        // indices add up.
        let g = randn(y.shape(), seed ^ 3);
        let back = Tensor::index_add_into_zeros(&shape, axis, &indices, &g);
        let mut expected = vec![0.0; x.numel()];
        let strides = flowzoo::tensor::layout::row_major_strides(&shape);
        for i in multi_indices(g.shape()) {
            let mut dst = i.clone();
            dst[axis] = indices[i[axis]];
            let at: usize = dst.iter().zip(&strides).map(|(a, s)| a * s).sum();
            expected[at] += g.get(&i);
        }
        crate::tolerance::assert_all_close("index_add_into_zeros", &back.to_vec(), &expected, crate::tolerance::KERNEL_RTOL);
    }

    #[test]
    fn flip_reverses_one_axis((shape, spec) in shaped_view(), axis in 0usize..4, seed in any::<u64>()) {
        let axis = axis % shape.len();
        let x = make_view(&shape, &spec, seed);
        let y = x.flip(axis);
        for i in multi_indices(&shape) {
            let mut src = i.clone();
            src[axis] = shape[axis] - 1 - i[axis];
            prop_assert_eq!(y.get(&i), x.get(&src));
        }
        prop_assert_eq!(y.flip(axis).to_vec(), naive_values(&x));
    }

    #[test]
    fn space_to_depth_follows_its_channel_order_and_depth_to_space_undoes_it(
        batch in 1usize..=3,
        channels in 1usize..=3,
        half_h in 1usize..=4,
        half_w in 1usize..=4,
        factor in 1usize..=3,
        spec in view_spec(4, true),
        seed in any::<u64>(),
    ) {
        let (h, w, f) = (half_h * factor, half_w * factor, factor);
        let x = make_view(&[batch, channels, h, w], &spec, seed);
        let y = x.space_to_depth(f);
        prop_assert_eq!(y.shape(), &[batch, channels * f * f, half_h, half_w][..]);
        // out[b, c·f² + i·f + j, y, x] = in[b, c, y·f + i, x·f + j]
        for b in 0..batch {
            for c in 0..channels {
                for i in 0..f {
                    for j in 0..f {
                        for yy in 0..half_h {
                            for xx in 0..half_w {
                                prop_assert_eq!(
                                    y.get(&[b, c * f * f + i * f + j, yy, xx]),
                                    x.get(&[b, c, yy * f + i, xx * f + j])
                                );
                            }
                        }
                    }
                }
            }
        }
        prop_assert_eq!(y.depth_to_space(f).to_vec(), naive_values(&x));
        // And the other way round, on a view of the squeezed shape.
        let z = make_view(y.shape(), &spec, seed ^ 1);
        prop_assert_eq!(z.depth_to_space(f).space_to_depth(f).to_vec(), naive_values(&z));
    }
}

#[test]
fn space_to_depth_of_a_4x4_image_matches_the_worked_example() {
    // The 2x2 squeeze of [[0..3], [4..7], [8..11], [12..15]]: channel
    // i·2 + j holds the pixels at offset (i, j) of each 2x2 block.
    let x = Tensor::<f64>::arange(16).reshape(&[1, 1, 4, 4]);
    let y = x.space_to_depth(2);
    assert_eq!(
        y.to_vec(),
        vec![
            0.0, 2.0, 8.0, 10.0, // (0, 0)
            1.0, 3.0, 9.0, 11.0, // (0, 1)
            4.0, 6.0, 12.0, 14.0, // (1, 0)
            5.0, 7.0, 13.0, 15.0, // (1, 1)
        ]
    );
}

#[test]
#[should_panic(expected = "reshape: element count differs: from [2, 3] to [4]")]
fn reshape_names_both_shapes_when_counts_differ() {
    let _ = Tensor::<f64>::zeros(&[2, 3]).reshape(&[4]);
}

#[test]
#[should_panic(expected = "broadcast_to: cannot broadcast shape [3] to [2, 4]")]
fn broadcast_to_names_both_shapes() {
    let _ = Tensor::<f64>::zeros(&[3]).broadcast_to(&[2, 4]);
}

#[test]
#[should_panic(expected = "stack: shapes differ: [2, 3] and [3, 2]")]
fn stack_names_both_shapes_when_they_differ() {
    let a = Tensor::<f64>::zeros(&[2, 3]);
    let b = Tensor::<f64>::zeros(&[3, 2]);
    let _ = Tensor::stack(&[&a, &b], 0);
}

#[test]
#[should_panic(expected = "concat: shapes disagree off axis 0: [2, 3] and [2, 4]")]
fn concat_names_both_shapes_when_they_disagree() {
    let a = Tensor::<f64>::zeros(&[2, 3]);
    let b = Tensor::<f64>::zeros(&[2, 4]);
    let _ = Tensor::concat(&[&a, &b], 0);
}

#[test]
#[should_panic(
    expected = "space_to_depth: expected [batch, channels, height, width] with height and width divisible by 2, got [1, 1, 3, 4]"
)]
fn space_to_depth_names_the_shape_when_it_does_not_divide() {
    let _ = Tensor::<f64>::zeros(&[1, 1, 3, 4]).space_to_depth(2);
}

#[test]
#[should_panic(
    expected = "depth_to_space: expected [batch, channels, height, width] with channels divisible by 4, got [1, 2, 3, 3]"
)]
fn depth_to_space_names_the_shape_when_channels_do_not_divide() {
    let _ = Tensor::<f64>::zeros(&[1, 2, 3, 3]).depth_to_space(2);
}
