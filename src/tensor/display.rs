//! `Debug` for tensors: shape, strides and values.

use super::{Element, Tensor};

impl<T: Element> std::fmt::Debug for Tensor<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        const SHOWN: usize = 16;
        let values = self.to_vec();
        write!(
            f,
            "Tensor<{}>(shape {:?}, strides {:?}, offset {}, values {:?}",
            T::NAME,
            self.shape(),
            self.strides(),
            self.layout().offset(),
            &values[..values.len().min(SHOWN)]
        )?;
        if values.len() > SHOWN {
            write!(f, " … {} more", values.len() - SHOWN)?;
        }
        write!(f, ")")
    }
}
